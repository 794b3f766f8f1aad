-- The wildcard certificate (`*.<zone>`) that serves every platform subdomain
-- of a zone, obtained by Atrium through ACME DNS-01 and handed to each
-- target's reverse proxy. One row per zone; a renewal replaces it. The key is
-- the certificate's private key (PEM): whoever can read the registry can
-- already reconfigure every route, so it is kept beside the rest.
CREATE TABLE platform_certificates (
    zone             TEXT NOT NULL PRIMARY KEY,
    certificate_pem  TEXT NOT NULL,
    key_pem          TEXT NOT NULL,
    not_before       TEXT NOT NULL,
    not_after        TEXT NOT NULL,
    obtained_at      TEXT NOT NULL
);
