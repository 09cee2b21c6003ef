/*
 * token.h: `aegis-bridge token …`, minting a signed token for the bridge's
 * own HS* secret (for the demo, tests and small deployments; production
 * tokens come from the application's identity provider).
 */
#ifndef AEGIS_TOKEN_H
#define AEGIS_TOKEN_H

#include <stdio.h>
#include <time.h>

/* argv[0] is "token".  Prints the token and a newline on out; errors on
 * err.  Returns the process exit status: 0, 2 on bad flags or key, 1 on
 * failure. */
int token_main(int argc, char **argv, FILE *out, FILE *err);

/* Pure: "90", "90s", "15m", "1h", "7d" → seconds (1..31536000); -1 if bad. */
long token_parse_ttl(const char *s);

/* Signs claims (a JSON object text) with key; returns a malloc'd token or
 * NULL.  Exposed for the unit tests. */
struct auth_key;
char *token_sign(const struct auth_key *key, const char *claims_json);

#endif
