-- The ACME cache (server.tls.mode acme): the CA account's key and the
-- certificates with their private keys, under the names autocert gives
-- them (a host name, "acme_account+key", ...). Replicas on one database
-- read it, so that a replica serves the certificate another one obtained
-- instead of ordering its own. It holds private keys: whoever may read the
-- database may impersonate the hosts.
CREATE TABLE acme_cache (
	key        text        PRIMARY KEY,
	data       bytea       NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);
