"""One module per chapter: what its notebook runs, shows and says, so that the notebook only calls it.

Chapter ``notebooks/NN_name.ipynb`` has its module ``vqstudy.chapters.name``. Each holds the chapter's
parameter model (a :class:`vqstudy.notebook.Parameters` subclass named ``Parameters``: defaults, checks,
the full profile's presets), the runs it trains (configs built from the parameters), the tables and
figures it shows, the values its claims are judged on, and the text glued into its prose. The generic
machinery (training, sweeps, diagnostics, tables, plots, the claims registry) lives in the modules below;
a chapter module only composes it.
"""
