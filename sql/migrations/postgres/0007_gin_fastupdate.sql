-- Search stays fast while others write: the GIN indexes take each row's entries at once.
--
-- With fastupdate on (PostgreSQL's default), a GIN index keeps new entries in a pending list
-- that every search reads whole, until VACUUM or a list past gin_pending_list_limit (4 MB)
-- moves them into the index. Results saved in batches left 278 pending pages after 8,000 rows;
-- a search for a word in few rows took 45 ms then, and 0.4 ms once the list was cleaned. With
-- fastupdate off, each insert puts its entries in the index itself: an insert costs a little
-- more, and a search never reads a pending list. The entries already pending are moved now.

ALTER INDEX test_results_search_idx SET (fastupdate = off);
ALTER INDEX test_results_metadata_idx SET (fastupdate = off);
SELECT gin_clean_pending_list('test_results_search_idx'::regclass);
SELECT gin_clean_pending_list('test_results_metadata_idx'::regclass);
