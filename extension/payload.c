/*-------------------------------------------------------------------------
 * payload.c
 *	  Builds the jsonb objects the extension stores as payloads (the seed's
 *	  {"event_type", "data"} envelope, conversation events, run requests, row
 *	  changes) member by member with pushJsonbValue, never through text;
 *	  and adds one string member to an existing object by writing the new
 *	  binary form directly (payload_add_string: the workspace payloads'
 *	  "event_type"), copying every other member's bytes as they are.
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

/*
 * The length of a container's child from its JEntry (see utils/jsonb.h): a
 * length, or every JB_OFFSET_STRIDE'th child its end offset.  *offset is the
 * child's start, advanced past it.
 */
static uint32
child_length(JEntry je, uint32 *offset)
{
	uint32		start = *offset;

	JBE_ADVANCE_OFFSET(*offset, je);
	return *offset - start;
}

/*
 * Copies a child's data to out + *pos; returns the length for its JEntry.
 * Numbers and nested containers start int-aligned (relative to the start of
 * the jsonb, as convertToJsonb writes them) and their padding counts as
 * their data.
 */
static uint32
copy_child(char *out, uint32 *pos, JEntry je, const char *data, uint32 start, uint32 len)
{
	uint32		srcpad = 0;
	uint32		pad = 0;

	if (JBE_ISNUMERIC(je) || JBE_ISCONTAINER(je))
	{
		srcpad = INTALIGN(start) - start;
		pad = INTALIGN(*pos) - *pos;
		memset(out + *pos, 0, pad);
		*pos += pad;
	}
	memcpy(out + *pos, data + start + srcpad, len - srcpad);
	*pos += len - srcpad;
	return pad + len - srcpad;
}

/*
 * object plus the member key: val (a string), or object itself when it has
 * key already.  Equal, byte for byte, to jsonb_concat(object, {key: val}) on
 * an object without key: the keys keep jsonb's order (by length, then
 * bytes), every other member's data is copied as it is, and only the JEntries
 * and the alignment padding of numbers and nested containers are new.
 */
Jsonb *
payload_add_string(Jsonb *object, const char *key, const char *val)
{
	const JsonbContainer *src = &object->root;
	uint32		n = JsonContainerSize(src);
	uint32		keylen = strlen(key);
	uint32		vallen = strlen(val);
	const JEntry *children = src->children;
	const char *data = (const char *) &children[n * 2];
	uint32		starts_buf[2 * 32 + 1];
	uint32	   *starts = n <= 32 ? starts_buf : palloc(sizeof(uint32) * (n * 2 + 1));
	uint32		at = n;
	uint32		entries_at;
	uint32		pos;
	uint32		total = 0;
	char	   *out;

	Assert(JB_ROOT_IS_OBJECT(object));

	/* Where each child's data starts (starts[i + 1] is its end). */
	starts[0] = 0;
	for (uint32 i = 0; i < n * 2; i++)
	{
		starts[i + 1] = starts[i];
		child_length(children[i], &starts[i + 1]);
	}
	/* The new key's place among the sorted keys. */
	for (uint32 i = 0; i < n; i++)
	{
		uint32		len = starts[i + 1] - starts[i];
		int			cmp = len != keylen ? (len > keylen ? 1 : -1) :
			memcmp(data + starts[i], key, keylen);

		if (cmp == 0)
		{
			if (starts != starts_buf)
				pfree(starts);
			return object;
		}
		if (cmp > 0)
		{
			at = i;
			break;
		}
	}

	/* header, JEntries, data, at most 3 bytes of padding per value */
	entries_at = VARHDRSZ + sizeof(uint32);
	pos = entries_at + sizeof(JEntry) * (n + 1) * 2;
	out = palloc(pos + starts[n * 2] + keylen + vallen + 3 * (n + 1));
	*(uint32 *) (out + VARHDRSZ) = (n + 1) | JB_FOBJECT;

	/* The keys, then the values, with the new member at "at". */
	for (uint32 half = 0; half < 2; half++)
	{
		for (uint32 j = 0; j <= n; j++)
		{
			uint32		slot = half * (n + 1) + j;
			JEntry		je;
			uint32		len;

			if (j == at)
			{
				len = half == 0 ? keylen : vallen;
				memcpy(out + pos, half == 0 ? key : val, len);
				pos += len;
				je = JENTRY_ISSTRING;
			}
			else
			{
				uint32		i = half * n + (j < at ? j : j - 1);

				je = children[i] & JENTRY_TYPEMASK;
				len = copy_child(out, &pos, children[i], data, starts[i],
								 starts[i + 1] - starts[i]);
			}
			total += len;
			if (total > JENTRY_OFFLENMASK)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("total size of jsonb object elements exceeds the maximum of %u bytes",
								JENTRY_OFFLENMASK)));
			((JEntry *) (out + entries_at))[slot] =
				slot % JB_OFFSET_STRIDE == 0 ? (je | total | JENTRY_HAS_OFF) : (je | len);
		}
	}
	if (starts != starts_buf)
		pfree(starts);
	SET_VARSIZE(out, pos);
	return (Jsonb *) out;
}
