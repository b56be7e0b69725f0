bucket = "clarity-loop-staging-tfstate"
prefix = "clarity/staging"
