from gitops_agent.cli import main

raise SystemExit(main())
