/*
 * model_ids: libFuzzer target for the stream id and Kafka topic rules
 * (extension/model.c).  Input: the bytes of an id (text in the server is
 * valid in its encoding, so inputs that are not valid UTF-8 are skipped).
 * Checked: an accepted stream id is 1 to 128 of [A-Za-z0-9_.:-]; an accepted
 * topic is 1 to 249 of [A-Za-z0-9._-], not "." or "..", not starting with
 * "__"; every refusal has a valid UTF-8 message (the character it names is
 * whole).
 */
#include <string.h>

#include "json_host.h"

static int
all_of(const unsigned char *s, size_t n, const char *extra)
{
	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  (c != 0 && strchr(extra, c) != NULL)))
			return 0;
	}
	return 1;
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	FuzzRun		run;
	ModelHost	h;
	const char *s = (const char *) data;
	int			len = (int) size;

	if (size > 100000 || memchr(data, 0, size) != NULL || !fuzz_utf8_valid(s, size))
		return 0;
	memset(&run, 0, sizeof(run));
	h = fuzz_host(&run);
	if (setjmp(run.jump) == 0)
		model_check_stream_id(&h, "conversation_id", s, len);
	if (!run.failed && !(size >= 1 && size <= 128 && all_of(data, size, "_.:-")))
		fuzz_die("a stream id outside the rule accepted", NULL);
	if (run.failed && size >= 1 && size <= 128 && all_of(data, size, "_.:-"))
		fuzz_die("a good stream id refused", run.message);
	fuzz_run_end(&run);

	memset(&run, 0, sizeof(run));
	h = fuzz_host(&run);
	if (setjmp(run.jump) == 0)
		model_check_topic(&h, s, len);
	{
		int			good = size >= 1 && size <= 249 && all_of(data, size, "._-") &&
			!(size == 1 && s[0] == '.') && !(size == 2 && s[0] == '.' && s[1] == '.') &&
			!(size >= 2 && s[0] == '_' && s[1] == '_');

		if (run.failed == good)
			fuzz_die(good ? "a good topic refused" : "a topic outside the rule accepted", run.message);
	}
	fuzz_run_end(&run);
	return 0;
}
