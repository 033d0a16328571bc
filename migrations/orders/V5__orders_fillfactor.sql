-- Every order is updated once, from 'new' to its final status, a moment after it is
-- inserted. With full pages (fillfactor 100) that update goes to another page and adds
-- a second entry to orders_pkey; with room left on the page it is a HOT update (same
-- page, no index entry), cheaper in WAL and in index size. 70 leaves room for about a
-- third of a page's rows to be updated before the page is pruned. Only pages written
-- from now on are filled to 70%; SHARE UPDATE EXCLUSIVE lock, writes go on.
ALTER TABLE orders SET (fillfactor = 70);
