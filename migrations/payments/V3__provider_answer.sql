-- What the payment provider said (PAYMENTS_PROVIDER=stripe): why a failed payment
-- failed, in the provider's words (a card decline's code and message), and the
-- provider's id of the payment (Stripe's PaymentIntent id), to find it in the
-- provider's dashboard. Both NULL for payments the simulated rule decided.
ALTER TABLE payments
    ADD COLUMN failure_reason      TEXT,
    ADD COLUMN provider_payment_id TEXT;
