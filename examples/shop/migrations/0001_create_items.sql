CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    sku TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    price_cents INTEGER NOT NULL
);

INSERT INTO items (sku, name, price_cents) VALUES
    ('MUG-01', 'Enamel mug', 1250),
    ('TEA-01', 'Loose-leaf tea, 100 g', 895),
    ('SPN-01', 'Tea spoon', 250),
    ('FLT-01', 'Paper filters, pack of 100', 399);
