-- Search stays fast while others write: the GIN indexes keep a short pending list.
--
-- A GIN index keeps new entries in a pending list (fastupdate, PostgreSQL's default) that
-- every search reads whole, until VACUUM moves them into the index, or an insert finds the
-- list past gin_pending_list_limit (4 MB by default) and moves them itself. Results saved in
-- batches left 278 pending pages after 8,000 rows: a search for a word in few rows took 45 ms,
-- and 0.4 ms once the list was moved. A limit of 256 kB keeps the list to 32 pages.
--
-- fastupdate off would keep no list, but costs each write far more: moving 6,000 rows of 2 KB
-- of output into the index from the list took 15 us a row, and putting them in one row at a
-- time 1,270 us a row more than keeping them pending (bench/reads.py, docs/SEARCH.md). With
-- this limit a writer moves the list every few dozen such rows, a few entries of each word at
-- once. The entries already pending are moved now.

ALTER INDEX test_results_search_idx SET (gin_pending_list_limit = 256);
ALTER INDEX test_results_metadata_idx SET (gin_pending_list_limit = 256);
SELECT gin_clean_pending_list('test_results_search_idx'::regclass);
SELECT gin_clean_pending_list('test_results_metadata_idx'::regclass);
