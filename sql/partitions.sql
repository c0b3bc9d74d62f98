-- Partitioned orders and products (the seed plan: orders by quarter on the order date,
-- products by category). Idempotent: safe to apply again. The quarterly orders partitions
-- themselves come from components/partitions.py (and its CronJob), N quarters ahead.
--
-- Why partition at 50 GB: retention and archiving of old quarters become a DETACH instead of
-- a DELETE, and the common queries (a customer's recent orders, a date range for reports,
-- a category listing) touch only the partitions they need (partition pruning).

CREATE TABLE IF NOT EXISTS orders (
    order_id     bigint GENERATED ALWAYS AS IDENTITY,
    customer_id  bigint      NOT NULL,
    order_date   date        NOT NULL,
    status       text        NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled',
                                   'refunded')),
    total_cents  bigint      NOT NULL CHECK (total_cents >= 0),
    currency     char(3)     NOT NULL DEFAULT 'USD',
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- A unique key on a partitioned table must contain the partition key.
    PRIMARY KEY (order_id, order_date)
) PARTITION BY RANGE (order_date);

-- Catches a row whose quarter has no partition yet. It should stay empty: the job creates
-- partitions ahead, and a quarter cannot be created later while the default holds rows of
-- it (PostgreSQL refuses), so a row here is an alert, not a place to keep data.
CREATE TABLE IF NOT EXISTS orders_default PARTITION OF orders DEFAULT;

-- "My orders": a customer's orders, newest first.
CREATE INDEX IF NOT EXISTS orders_customer_date_idx ON orders (customer_id, order_date DESC);
-- Fulfilment queues: the few open orders, by date.
CREATE INDEX IF NOT EXISTS orders_open_date_idx ON orders (order_date)
    WHERE status IN ('pending', 'paid');
-- Range reports scan only the pruned partitions; BRIN keeps that cheap and tiny.
CREATE INDEX IF NOT EXISTS orders_created_brin ON orders USING brin (created_at);


CREATE TABLE IF NOT EXISTS products (
    product_id   bigint GENERATED ALWAYS AS IDENTITY,
    category     text    NOT NULL,
    sku          text    NOT NULL,
    name         text    NOT NULL,
    price_cents  bigint  NOT NULL CHECK (price_cents >= 0),
    active       boolean NOT NULL DEFAULT true,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, category),
    UNIQUE (sku, category)
) PARTITION BY LIST (category);

-- The catalogue's categories (project choice; a new category lands in the default until
-- it gets its own partition).
CREATE TABLE IF NOT EXISTS products_sofa_covers PARTITION OF products
    FOR VALUES IN ('sofa-covers');
CREATE TABLE IF NOT EXISTS products_sectional_covers PARTITION OF products
    FOR VALUES IN ('sectional-covers');
CREATE TABLE IF NOT EXISTS products_chair_covers PARTITION OF products
    FOR VALUES IN ('chair-covers');
CREATE TABLE IF NOT EXISTS products_cushion_covers PARTITION OF products
    FOR VALUES IN ('cushion-covers');
CREATE TABLE IF NOT EXISTS products_accessories PARTITION OF products
    FOR VALUES IN ('accessories');
CREATE TABLE IF NOT EXISTS products_default PARTITION OF products DEFAULT;

-- Category listings: active products of a category by price.
CREATE INDEX IF NOT EXISTS products_listing_idx ON products (category, price_cents)
    WHERE active;
-- Lookup by SKU across categories (cart, admin).
CREATE INDEX IF NOT EXISTS products_sku_idx ON products (sku);
