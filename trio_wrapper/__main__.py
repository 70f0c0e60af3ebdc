from trio_wrapper.cli import main

raise SystemExit(main())
