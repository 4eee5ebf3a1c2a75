-- Organization webhooks: endpoints, the delivery queue (which is also the
-- delivery log), each attempt, and the once-per-token notices already sent.

-- secret is the Standard Webhooks signing secret ("whsec_…"), kept as is
-- because every delivery is signed with it; it is never a credential that
-- anyone presents to keygate.
CREATE TABLE webhooks (
	pos             BIGINT GENERATED ALWAYS AS IDENTITY,
	id              TEXT PRIMARY KEY,
	organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	url             TEXT NOT NULL,
	events          TEXT[] NOT NULL DEFAULT '{}', -- empty: every event
	secret          TEXT NOT NULL,
	disabled        BOOLEAN NOT NULL DEFAULT false,
	created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhooks_organization ON webhooks (organization_id, created_at);

-- A pending delivery's next_attempt_at is when it is due; claiming it moves
-- next_attempt_at to the end of the claim's lease.
CREATE TABLE webhook_deliveries (
	pos             BIGINT GENERATED ALWAYS AS IDENTITY,
	id              TEXT PRIMARY KEY, -- the webhook-id header
	webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
	organization_id TEXT NOT NULL,
	event           TEXT NOT NULL,
	payload         BYTEA NOT NULL, -- the body exactly as signed
	state           TEXT NOT NULL,  -- pending, delivered or failed
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at TIMESTAMPTZ,
	last_attempt_at TIMESTAMPTZ,
	last_status     INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	last_response   TEXT NOT NULL DEFAULT '',
	delivered_at    TIMESTAMPTZ,
	created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);
CREATE INDEX webhook_deliveries_organization ON webhook_deliveries (organization_id, created_at);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);

CREATE TABLE webhook_attempts (
	delivery_id     TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
	attempt         INTEGER NOT NULL,
	at              TIMESTAMPTZ NOT NULL,
	duration_ms     BIGINT NOT NULL,
	status          INTEGER NOT NULL, -- 0 when no answer came
	error           TEXT NOT NULL,
	response        TEXT NOT NULL,    -- the start of the answer's body
	delivered       BOOLEAN NOT NULL,
	next_attempt_at TIMESTAMPTZ,      -- the retry it scheduled; NULL after success or when it gave up
	PRIMARY KEY (delivery_id, attempt)
);

-- One row per token and once-per-token event (token.expiring,
-- token.expired) that went out. Tokens outlive organizations, so token_id
-- is not a foreign key.
CREATE TABLE token_notices (
	token_id   TEXT NOT NULL,
	event      TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (token_id, event)
);
CREATE INDEX token_notices_created ON token_notices (created_at);
