/*
 * model_workspace: libFuzzer target for the eight workspace event models
 * (extension/model.c).  Input: a JSON document, as a client would send the
 * payload; its "event_type" member names the model (any string, so unknown
 * types are tried too), or, without one, the input's length picks one.
 * Checked: no crash or sanitizer report; an error has a class, a message and
 * a hint in valid UTF-8; the same input gives the same answer twice; the
 * headers check over the same document holds the same rules.
 */
#include <string.h>

#include "json_host.h"

static const char *const types[] = {
	"checklist_item_update", "artifact_generated", "data_table_update",
	"form_field_update", "validation_result", "spatial_update", "agent_status",
	"assessment_complete"
};

static void
check_once(FuzzRun *run, const char *type, const json_t *doc, int headers)
{
	ModelHost	h = fuzz_host(run);
	ModelValue	root;

	memset(run->message, 0, sizeof(run->message));
	run->failed = 0;
	fuzz_value(doc, &root);
	if (setjmp(run->jump) == 0)
	{
		if (headers)
			model_check_headers(&h, &root);
		else
			model_check_workspace(&h, type, &root, true);
	}
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	json_t	   *doc = fuzz_parse(data, size);
	json_t	   *et;
	const char *type;
	FuzzRun		a,
				b;

	if (doc == NULL)
		return 0;
	et = json_is_object(doc) ? json_object_get(doc, "event_type") : NULL;
	type = json_is_string(et) ? json_string_value(et) : types[size % 8];
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	check_once(&a, type, doc, 0);
	check_once(&b, type, doc, 0);
	if (a.failed != b.failed || strcmp(a.message, b.message) != 0)
		fuzz_die("two checks of one input disagree", a.message);
	if (a.failed && model_workspace_type(type) != NULL && strncmp(a.message, type, strlen(type)) != 0 &&
		a.message[0] != '"')
		fuzz_die("an error that does not start with the model's path", a.message);
	fuzz_run_end(&a);
	fuzz_run_end(&b);
	check_once(&a, NULL, doc, 1);
	fuzz_run_end(&a);
	json_decref(doc);
	return 0;
}
