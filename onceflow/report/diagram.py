def write_html(*a, **k): pass
