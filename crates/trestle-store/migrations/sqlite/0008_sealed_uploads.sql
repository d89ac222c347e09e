-- Sealed uploads: a submit seals the uploads its jobs read their inputs
-- from (in its transaction), and no file of a sealed upload changes again.
ALTER TABLE uploads ADD COLUMN sealed_at INTEGER;
