/*-------------------------------------------------------------------------
 * model.h
 *	  The event models' checking logic (model.c), free of PostgreSQL so that
 *	  it also builds outside the server (test/fuzz).  It sees a JSON value
 *	  through a ModelValue and asks its host (validate.c: jsonb; the fuzz
 *	  targets: jansson) for containers, numbers, memory and errors.
 *-------------------------------------------------------------------------
 */
#ifndef AEGIS_MODEL_H
#define AEGIS_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ModelKind
{
	MK_NULL,
	MK_STRING,
	MK_NUMBER,
	MK_BOOL,
	MK_ARRAY,
	MK_OBJECT
} ModelKind;

/* A JSON value as the checks see it; ref is the host's (number or container). */
typedef struct ModelValue
{
	ModelKind	kind;
	const char *str;			/* MK_STRING: len bytes, no NUL inside */
	int			len;
	bool		boolean;		/* MK_BOOL */
	const void *ref;			/* MK_NUMBER, MK_ARRAY, MK_OBJECT */
} ModelValue;

/* The error classes; the host maps them to SQLSTATEs. */
typedef enum ModelError
{
	MODEL_INVALID,				/* 22023 invalid_parameter_value */
	MODEL_RANGE,				/* 22003 numeric_value_out_of_range */
	MODEL_LENGTH,				/* 22026 string_data_length_mismatch */
	MODEL_NOT_NULL,				/* 23502 not_null_violation */
	MODEL_UNIQUE,				/* 23505 unique_violation */
	MODEL_CHECK					/* 23514 check_violation */
} ModelError;

/* Numbers the host compares with exactly (no rounding to double). */
typedef enum ModelBound
{
	MB_NONE,
	MB_ZERO,
	MB_ONE,
	MB_LARGE,					/* 1e300: below it a double is finite */
	MB_INT64_MAX
} ModelBound;

typedef struct ModelIter ModelIter;

typedef struct ModelHost
{
	void	   *arg;
	/* memory that lives until the host's next check; never NULL */
	void	   *(*alloc) (void *arg, size_t size);
	/* reports the error; does not return */
	void		(*fail) (void *arg, ModelError error, const char *message, const char *hint);
	/* called every so many elements of long loops */
	void		(*interrupt) (void *arg);
	/* bytes of the character at s (1 .. remaining) in the host's encoding */
	int			(*char_len) (void *arg, const char *s, int remaining);

	/* containers */
	int			(*size) (void *arg, const void *container);
	ModelIter  *(*iterate) (void *arg, const void *container);
	/* the next member (key set) or element (key NULL); false at the end */
	bool		(*next) (void *arg, ModelIter *it, ModelValue *key, ModelValue *value);
	bool		(*member) (void *arg, const void *object, const char *key, ModelValue *out);
	bool		(*element) (void *arg, const void *array, int index, ModelValue *out);
	/* two containers hold equal JSON */
	bool		(*equal) (void *arg, const void *a, const void *b);

	/* numbers: a quick exact "yes, within" (false: undecided or no) */
	bool		(*within) (void *arg, const void *num, ModelBound low, ModelBound high,
						   bool integer);
	/* an integer (in value; "3.0" is one) that fits int64 */
	bool		(*to_int64) (void *arg, const void *num, int64_t *out);
	double		(*to_double) (void *arg, const void *num);
	/* the number's text, for messages */
	const char *(*to_text) (void *arg, const void *num);
} ModelHost;

/* How many bytes of a value a message quotes. */
#define MODEL_GOT_MAX 60

/* The canonical name of a workspace event type, or NULL. */
extern const char *model_workspace_type(const char *event_type);
/* "checklist_item_update, ..." for hints */
extern const char *model_workspace_type_list(void);

extern void model_check_workspace(const ModelHost *h, const char *type,
								  const ModelValue *payload, bool allow_event_type);
extern void model_check_conversation(const ModelHost *h, const char *event,
									 const char *node, const ModelValue *data);
extern void model_check_stream_id(const ModelHost *h, const char *what,
								  const char *s, int len);
extern void model_check_topic(const ModelHost *h, const char *s, int len);
extern void model_check_headers(const ModelHost *h, const ModelValue *headers);

/* The longest prefix of s[0..len) of at most limit bytes ending on a character boundary. */
extern int	model_clip(const ModelHost *h, const char *s, int len, int limit);

#endif							/* AEGIS_MODEL_H */
