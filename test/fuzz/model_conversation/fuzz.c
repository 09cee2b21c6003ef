/*
 * model_conversation: libFuzzer target for the three conversation events
 * (extension/model.c).  Input: a JSON object in the stored shape
 * {"event": ..., "node": ..., "data": ...}; "event" must be a string (any),
 * "node" a string or absent/null.  Checked: no crash or sanitizer report;
 * an error has a class, a message and hint in valid UTF-8; an accepted
 * event is node_end, done or error, with a node exactly for node_end.
 */
#include <string.h>

#include "json_host.h"

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	json_t	   *doc = fuzz_parse(data, size);
	json_t	   *ev,
			   *node,
			   *d;
	const char *event;
	const char *n;
	FuzzRun		run;
	ModelHost	h;
	ModelValue	root;

	if (doc == NULL)
		return 0;
	ev = json_object_get(doc, "event");
	node = json_object_get(doc, "node");
	d = json_object_get(doc, "data");
	if (!json_is_string(ev) || d == NULL || (node != NULL && !json_is_null(node) && !json_is_string(node)))
	{
		json_decref(doc);
		return 0;
	}
	event = json_string_value(ev);
	n = json_is_string(node) ? json_string_value(node) : NULL;
	memset(&run, 0, sizeof(run));
	h = fuzz_host(&run);
	fuzz_value(d, &root);
	if (setjmp(run.jump) == 0)
		model_check_conversation(&h, event, n, &root);
	if (!run.failed)
	{
		int			node_end = strcmp(event, "node_end") == 0;

		if (!node_end && strcmp(event, "done") != 0 && strcmp(event, "error") != 0)
			fuzz_die("an unknown event accepted", event);
		if (node_end != (n != NULL && n[0] != '\0'))
			fuzz_die("a node accepted where none belongs, or none where one does", event);
		if (!json_is_object(d))
			fuzz_die("data that is not an object accepted", event);
	}
	fuzz_run_end(&run);
	json_decref(doc);
	return 0;
}
