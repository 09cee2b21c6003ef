/*
 * test/browser/ask.test.js: the dashboard's message box in a real browser,
 * run by test/suites/74-browser-runs.sh (which starts PostgreSQL with the
 * extension and agent type rule_37, the reference worker and aegis-bridge
 * serving web/).  Headless Debian chromium opens the dashboard, types a
 * question and sends it; the page must show the question, the worker's
 * node_end steps in order and the done summary, and the store must hold one
 * finished run with that message.
 * Environment: AEGIS_BASE (the bridge's URL), AEGIS_OUT (a folder), PG*.
 */
"use strict";

const path = require("path");
const T = require("./lib");

const BASE = process.env.AEGIS_BASE;
const OUT = process.env.AEGIS_OUT || "/tmp";
const QUESTION = "Does Permian Basin 12H need a Rule 37 spacing exception? (" + process.pid + ")";
const PIPELINE = ["system_prompt_node", "memory_node", "initial_llm_call", "tool_node", "initial_llm_call",
  "skill_select_node", "skill_inject_node", "approval_node", "synthesis_llm_call", "output_format"];

async function main() {
  const browser = await T.launchBrowser();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(BASE + "/?checklist=chk-ask&conversations=", { waitUntil: "load" });
    T.check("the dashboard has a message box", await page.locator("#ask-message").count() === 1);
    await page.fill("#ask-message", QUESTION);
    await page.click("#ask-send");
    T.check("the box is emptied for the next question", (await page.inputValue("#ask-message")) === "");

    await T.waitFor("the done summary", () => page.locator(".conversation .outcome.done").count(), 60000);
    const shown = await page.evaluate(() => {
      const box = document.querySelector(".conversation");
      return {
        id: box.querySelector("h3").textContent,
        question: (box.querySelector(".msg.role-user p") || {}).textContent,
        nodes: Array.from(box.querySelectorAll(".nodes li")).map((li) => li.dataset.node),
        done: box.querySelector(".outcome").textContent
      };
    });
    T.check("the question is shown as the user's message", shown.question === QUESTION, shown.question);
    T.check("the worker's steps arrive in order, each once", shown.nodes.join(" ") === PIPELINE.join(" "),
      shown.nodes.join(" "));
    T.check("the done summary shows status, tokens and cost",
      /Done: completed/.test(shown.done) && /5,630 tokens/.test(shown.done) && /\$0\.045/.test(shown.done), shown.done);
    const run = T.psql("SELECT state || ' ' || attempt FROM aegis.runs WHERE conversation_id = " + T.sqlLiteral(shown.id) +
      " AND message = " + T.sqlLiteral(QUESTION));
    T.check("the store holds one finished run for the question", run === "done 1", run);
    const badge = await page.evaluate(() => Array.from(document.querySelectorAll(".badge"))
      .map((b) => b.textContent).join(" | "));
    T.diag("badges: " + badge);
    T.check("no script error on the page", errors.length === 0, errors.join("; "));
    await page.screenshot({ path: path.join(OUT, "ask.png"), fullPage: true });
  } finally {
    await browser.close();
  }
}

main().then(() => T.finish("ask"), (e) => { T.notOk("message box scenario", e.message); T.finish("ask"); });
