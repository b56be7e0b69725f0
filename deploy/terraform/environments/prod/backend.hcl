bucket = "clarity-loop-prod-tfstate"
prefix = "clarity/prod"
