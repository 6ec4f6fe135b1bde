-- The inventory file's own health, for the cheap check inventory.Open and
-- cip query make before trusting it (SQLite keeps no page checksums, so a
-- damaged file reads on until a query trips over it): PRAGMA quick_check
-- runs when the file is not the size cip left it at its last clean close
-- (a crash, another program, a copy cut short) or when the last passing
-- check is a day old. cip inventory check runs the full check.

-- One row: what cip recorded when it last closed the file, and checked it.
CREATE TABLE inventory_health (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    closed_size INTEGER,                 -- bytes of the file at cip's last clean close; NULL while a cip has it open, or after a crash
    checked_at  INTEGER                  -- unix seconds when quick_check (or cip inventory check) last passed; NULL: never
);
INSERT INTO inventory_health(id) VALUES (1);
