# cluster stage (issue 3): rules to come.
