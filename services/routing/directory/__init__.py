"""The national directory: the taxonomy of categories, provinces' reference facts, the
generator of the standard offices of every province and regency/city, the directory file
operators edit, and how rules are matched. Plain Python; storage.py writes it to the
database."""
