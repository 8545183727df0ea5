"""``naslib.search_spaces.nasbench201``."""
