"""Search spaces: NAS-Bench-201 (:mod:`metantk_plugin.spaces.nasbench201`) and the few-shot
DARTS space (:mod:`metantk_plugin.spaces.darts_fewshot`)."""
