-- An order moves from 'new' to a final status when its payment is decided (orders
-- consumes PaymentStatus): 'paid' or 'payment_failed'. NOT VALID: existing rows
-- (all 'new') are not scanned, new writes are checked.
ALTER TABLE orders ADD CONSTRAINT orders_status_known
    CHECK (status IN ('new', 'paid', 'payment_failed')) NOT VALID;
