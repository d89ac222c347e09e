-- How each worker isolates its tasks (issue 12): JSON {mode, limits}.
ALTER TABLE workers ADD COLUMN isolation TEXT;
