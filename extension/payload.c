/*-------------------------------------------------------------------------
 * payload.c
 *	  Builds the jsonb objects the extension stores as payloads (the seed's
 *	  {"event_type", "data"} envelope, conversation events, run requests, row
 *	  changes) member by member with pushJsonbValue, never through text.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/jsonb.h"

#include "aegis.h"

void
payload_begin(JsonbParseState **state)
{
	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
}

Jsonb *
payload_end(JsonbParseState **state)
{
	return JsonbValueToJsonb(pushJsonbValue(state, WJB_END_OBJECT, NULL));
}

static void
payload_key(JsonbParseState **state, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &k);
}

/* key: a string of len bytes (len < 0: up to the NUL), or null when val is NULL */
void
payload_string(JsonbParseState **state, const char *key, const char *val, int len)
{
	JsonbValue	v;

	payload_key(state, key);
	if (val == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) val;
		v.val.string.len = len < 0 ? strlen(val) : len;
	}
	pushJsonbValue(state, WJB_VALUE, &v);
}

void
payload_text(JsonbParseState **state, const char *key, text *val)
{
	if (val == NULL)
		payload_string(state, key, NULL, 0);
	else
		payload_string(state, key, VARDATA_ANY(val), VARSIZE_ANY_EXHDR(val));
}

/* key: a jsonb value, or null when value is NULL */
void
payload_jsonb(JsonbParseState **state, const char *key, Jsonb *value)
{
	JsonbValue	v;

	payload_key(state, key);
	if (value == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvBinary;
		v.val.binary.data = &value->root;
		v.val.binary.len = VARSIZE(value) - VARHDRSZ;
	}
	pushJsonbValue(state, WJB_VALUE, &v);
}
