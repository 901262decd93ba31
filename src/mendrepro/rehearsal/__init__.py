"""The dress rehearsal of the paper profile: Table 4's pipeline at real model sizes on CPU, from a staged mirror.

* :mod:`mendrepro.rehearsal.tokenizers`: tokenizers in the real models' file formats, trained on the synthetic world.
* :mod:`mendrepro.rehearsal.stage`: writes the mirror ``data.mirror`` reads (Hub-style model snapshots at real size
  with random weights, De Cao's state dicts, the release's data files, the Hub datasets' parquet files).
* :mod:`mendrepro.rehearsal.estimate`: the rehearsal's benchmark files extrapolated to the paper's step counts.

Nothing here is imported by the workflow's jobs: the rehearsal runs the paper profile's own rules and code.
"""
