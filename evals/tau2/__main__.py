"""``python -m evals.tau2``: run τ² retail tasks against Kefu (see ``evals.tau2.run``)."""

from evals.tau2.run import main

raise SystemExit(main())
