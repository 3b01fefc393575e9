"""τ²-bench retail adapter: τ²'s database in Kefu's store, τ²'s tools in Kefu's registry, τ²'s scoring.

Modules: ``db`` (loading, the Kefu mapping, the state hash), ``retail`` (the 16 operations),
``tools`` (them as Kefu tools), ``agent`` (Kefu's graph in-process, and the authentication
bridge), ``user`` (the LLM user simulator), ``score`` (tasks, reference replay, reward), ``run``
(the trial loop, pass^k, the CLI: ``python -m evals.tau2`` or ``kefu eval tau2``).
"""
