/*
 * conf.h — the configuration: KEY=value lines, the environment on top.
 *
 * The file uses the names people already keep in a .env for this job, so a
 * .env written for the Python services works as-is: `#` comments, optional
 * `export `, optional single or double quotes, everything after the first
 * `=` kept (URLs with `?` and `=` included).  Keys we do not know are kept
 * out of the way with a warning, never an error.
 *
 * conf_load() is the same code for start-up, SIGHUP and `voxrelay -t`: it
 * builds a fresh struct conf and either returns it whole or reports every
 * problem it found, one line each, as "file:line: KEY: what is wrong".
 */
#ifndef VR_CONF_H
#define VR_CONF_H

#include <stddef.h>
#include <stdint.h>

#define CONF_SECRET	0x1	/* never printed, never logged */

/* An address block: IPv6, IPv4 as ::ffff:a.b.c.d (96 + prefix bits). */
struct conf_net {
	uint8_t	 cn_addr[16];
	int	 cn_bits;
};

struct conf {
	/* network */
	int	 port;
	char	*bind;
	int	 workers;		/* resolved: never 0 after load */
	char	*public_url;		/* "" when unset */
	char	*admin_bind;		/* the operator's listener */
	int	 admin_port;
	char	*admin_token;		/* "" when unset: no Authorization */
	/* twilio */
	char	*twilio_account_sid;
	char	*twilio_auth_token;
	char	*twilio_phone_number;
	int	 validate_signature;	/* resolved: 0 or 1 */
	char	*stream_secret;		/* random per start when unset */
	int	 stream_token_ttl;	/* s */
	int	 prewarm;		/* open the session at the webhook;
					 * -1 (auto) counts as on */
	/* minutes */
	double	 free_call_minutes;
	double	 session_rollover_minutes;	/* a fresh session after this */
	double	 min_call_duration;
	char	*usage_csv_path;
	char	*usage_csv_backup_path;
	int	 usage_flush_interval;	/* s */
	int	 ledger_capacity;
	/* limits */
	int	 max_ws_connections;
	int	 max_http_connections;
	int	 max_conns_per_ip;	/* open connections per client */
	char	*trusted_proxies;	/* as written; parsed into trusted */
	char	*cors_origins;		/* browser origins allowed on /api/ */
	int	 answer_budget;		/* bytes of answers held, all clients */
	int	 max_header_size;
	int	 max_headers;
	int	 max_body_size;
	int	 header_timeout;	/* s */
	int	 keepalive_timeout;	/* s */
	int	 ws_max_message;	/* bytes */
	int	 max_media_payload;	/* decoded bytes of one media message */
	int	 ws_idle_timeout;	/* s without a message from Twilio */
	int	 ws_start_timeout;	/* s from the upgrade to `start` */
	int	 max_outbound_buffer;	/* bytes queued for one peer */
	int	 heartbeat_timeout;	/* ms */
	int	 drain_timeout;		/* s, SIGTERM */
	int	 reload_timeout;	/* s, old generation after SIGHUP */
	/* OpenAI */
	char	*openai_url;
	char	*openai_api_key;
	char	*openai_dialect_name;	/* "ga" or "beta" */
	char	*openai_ca_file;
	char	*openai_ca_bundle;
	char	*openai_organization;
	char	*openai_project;
	int	 openai_connect_timeout;	/* s */
	int	 openai_handshake_timeout;	/* s */
	int	 openai_ping_interval;		/* s */
	int	 openai_pong_timeout;		/* s */
	int	 mark_interval_ms;		/* split model audio for marks */
	int	 frames_per_append;		/* caller frames per append */
	/* outbound calls (daemon/outbound.c) */
	char	*phone_number_from;	/* TWILIO_PHONE_NUMBER when unset */
	char	*verified_phone_numbers;
	int	 allow_all_us_canada;
	int	 outbound_cooldown;	/* s per number */
	int	 max_concurrent_calls;	/* outbound calls at once */
	char	*default_outbound_line;
	int	 outbound_status_grace;	/* s past a line's max_call_minutes
					 * without a status callback before
					 * the master asks Twilio */
	int	 outbound_greeting_pause;	/* ms of silence before the
						 * model speaks first */
	char	*campaigns_dir;		/* daemon/campaign.c */
	/* the practice line */
	char	*twilio_api_base;
	int	 sms_enabled;		/* resolved 0/1 */
	char	*convoreps_url;
	char	*sms_message;
	char	*greeting_url;
	char	*wrapup_instructions;
	int	 wrapup_grace;		/* s */
	int	 intent_fallback_seconds;
	char	*bookings_path;
	/* personas, transcripts */
	char	*personas_dir;
	char	*lines_dir;
	char	*transcripts_dir;
	char	*transcript_csv_path;
	/* call records (daemon/store.h) */
	int	 call_records;		/* false: no store, nothing recorded */
	char	*database_path;
	char	*database_url;		/* postgresql://...; "" for SQLite */
	char	*database_journal;
	int	 retention_days;	/* 0: keep */
	char	*host_name;		/* in records; "" for gethostname() */
	int	 shared_timeout_ms;	/* admission's wait on DATABASE_URL */
	int	 shared_live_interval;	/* s between live calls' minutes there */
	/* the model's prices, USD per million tokens, for records' cost */
	double	 price_text_in, price_cached_in, price_audio_in;
	double	 price_text_out, price_audio_out;
	/* words spoken by Twilio */
	char	*default_route;
	char	*say_voice;
	char	*after_stream_message;
	char	*out_of_minutes_message;
	char	*busy_message;
	/* files */
	char	*log_file;
	char	*pid_file;
	int	 log_level;		/* 0 info, 1 debug */

	/* not keys: filled by conf_load */
	char	*path;
	int	 stream_secret_random;
	int	 openai_dialect;	/* enum oa_dialect */
	int	 openai_tls;		/* wss:// */
	char	*openai_host;		/* without brackets */
	int	 openai_port;
	char	*openai_target;		/* path and query, exactly */
	struct conf_net *trusted;	/* TRUSTED_PROXIES */
	unsigned ntrusted;
};

/* Load path (NULL: defaults and environment only).  On success returns 0
 * and fills *out (free with conf_free).  On error returns the number of
 * problems and writes them, newline-separated, into err. */
int  conf_load(const char *path, struct conf *out, char *err, size_t errlen);
void conf_free(struct conf *c);

/* 1 if addr is a numeric address in 127.0.0.0/8 or ::1. */
int  conf_addr_is_loopback(const char *addr);
/* 1 if addr (IPv6, IPv4 mapped) is in TRUSTED_PROXIES. */
int  conf_addr_trusted(const struct conf *c, const uint8_t addr[16]);
/*
 * A URL we send a secret to, or give out: it must start with tls_scheme,
 * or with plain_scheme when its host is a loopback one (a local test peer
 * or a TLS terminator on the same host), since anything else would carry
 * the secret in clear.  0, or -1 with the reason in why.
 */
int  conf_url_check(const char *url, const char *tls_scheme,
    const char *plain_scheme, char *why, size_t whylen);

/* Print every key with its effective value, secrets as "(set)"/"(unset)". */
void conf_dump(const struct conf *c, int fd);

#endif
