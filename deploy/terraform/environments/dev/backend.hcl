bucket = "clarity-loop-dev-tfstate"
prefix = "clarity/dev"
