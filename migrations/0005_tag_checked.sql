-- When cip last confirmed each tag's digest live: a HEAD or GET of the tag
-- in a crawl, the registry's own tag-to-digest listing (GCR's extension),
-- or cip's own PUT of the tag. NULL: never confirmed since this column was
-- added. `--tag-ttl D` lets a crawl take a tag the registry still lists
-- from the inventory, without a HEAD, when it was confirmed less than D
-- ago; by default every listed tag is confirmed again.
ALTER TABLE tags ADD COLUMN checked_at TEXT;
