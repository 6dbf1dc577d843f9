// End-to-end tests of the opsdesk web interface in a real browser: Playwright (playwright-core
// from npm) driving Debian's Chromium at /usr/bin/chromium. Never downloads a browser.
//
//   node tests/browser/run.mjs PATH_TO_OPSDESK_BINARY [ARTIFACT_DIR]
//
// Starts the binary on a fresh SQLite data directory and a free port, creates an admin, an
// agent and two customers, and runs the scenarios below. Screenshots of the main pages go to
// ARTIFACT_DIR (default test-artifacts/screenshots). Every page visited passes an
// accessibility smoke check: labelled controls, text contrast, visible keyboard focus.
// Exits non-zero on the first failure, with the server's log tail.

import { chromium } from "playwright-core";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import assert from "node:assert/strict";

const bin = resolve(process.argv[2] || "target/debug/opsdesk");
const artifacts = resolve(process.argv[3] || "test-artifacts/screenshots");
const chromiumPath = process.env.OPSDESK_CHROMIUM || "/usr/bin/chromium";
mkdirSync(artifacts, { recursive: true });
// Screenshots of an earlier run's failures would mislead: they go.
for (const f of readdirSync(artifacts)) if (f.startsWith("FAILED-")) rmSync(join(artifacts, f));
const data = mkdtempSync(join(tmpdir(), "opsdesk-browser-"));

function cli(...args) {
  return execFileSync(bin, ["--data-dir", data, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

const PASSWORD = "password-123";
for (const [email, name, role] of [
  ["admin@example.com", "Ada Admin", "admin"],
  ["agent@example.com", "Alan Agent", "agent"],
  ["cora@example.com", "Cora Customer", "end-user"],
  ["dan@example.com", "Dan Customer", "end-user"],
  ["eve@example.com", "Eve Outsider", "end-user"],
]) {
  cli("user", "create", "--email", email, "--name", name, "--role", role, "--password", PASSWORD);
}
const token = cli("token", "create", "--email", "admin@example.com").split("\n").pop();

// The server, on a free port; its log is kept for failures.
let log = "";
const server = spawn(bin, ["--data-dir", data, "serve", "--listen", "127.0.0.1:0", "--public-url", "http://127.0.0.1"], {
  stdio: ["ignore", "pipe", "pipe"],
  env: { ...process.env, RUST_LOG: "warn" },
});
server.stdout.on("data", (d) => { log += d; });
const base = await new Promise((ok, fail) => {
  const timer = setTimeout(() => fail(new Error("server did not start in 30 s\n" + log)), 30_000);
  server.stderr.on("data", (d) => {
    log += d;
    const m = /listening on (http:\/\/[0-9.:]+)/.exec(log);
    if (m) { clearTimeout(timer); ok(m[1]); }
  });
  server.on("exit", (c) => fail(new Error(`server exited with ${c}\n${log}`)));
});

async function api(method, path, body) {
  const r = await fetch(`${base}/api/v2${path}`, {
    method,
    headers: { "content-type": "application/json", authorization: "Basic " + Buffer.from(`admin@example.com/token:${token}`).toString("base64") },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  assert.ok(r.ok, `${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// ---- the accessibility smoke check --------------------------------------------------------

async function a11y(page, name) {
  const problems = await page.evaluate(() => {
    const out = [];
    // Every visible control has a name: a <label for>, a wrapping label, aria-label(ledby).
    for (const el of document.querySelectorAll("input, select, textarea, button")) {
      if (el.type === "hidden" || el.offsetParent === null) continue;
      const named = (el.labels && el.labels.length) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") ||
        (el.tagName === "BUTTON" && el.textContent.trim());
      if (!named) out.push(`unlabelled ${el.tagName.toLowerCase()} name=${el.name || "?"}`);
    }
    for (const img of document.querySelectorAll("img")) if (!img.hasAttribute("alt")) out.push("image without alt");
    if (!document.documentElement.lang) out.push("no lang on <html>");
    if (!document.querySelector("h1")) out.push("no h1");
    // Text contrast (WCAG AA 4.5:1 for body text) against the first opaque background up the tree.
    const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const bg = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length >= 3 && (c.length < 4 || c[3] > 0.9)) return c;
      }
      return [255, 255, 255];
    };
    const seen = new Set();
    for (const el of document.querySelectorAll("body *")) {
      if (el.offsetParent === null && el.tagName !== "BODY") continue;
      const hasText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!hasText) continue;
      const st = getComputedStyle(el);
      if (st.visibility === "hidden" || el.closest(".sr")) continue;
      const fg = rgb(st.color), b = bg(el);
      const [l1, l2] = [lum(fg), lum(b)].sort((x, y) => y - x);
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      if (ratio < 4.5) {
        const key = `${el.tagName}.${el.className}`;
        if (!seen.has(key)) { seen.add(key); out.push(`contrast ${ratio.toFixed(2)} on ${key} "${el.textContent.trim().slice(0, 30)}"`); }
      }
    }
    return out;
  });
  assert.deepEqual(problems, [], `${name}: accessibility problems`);
  // Keyboard: Tab moves focus to a visible element with a visible focus indicator.
  await page.locator("body").click({ position: { x: 1, y: 1 } });
  await page.keyboard.press("Tab");
  const focus = await page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return "nothing focused";
    const st = getComputedStyle(el);
    const visible = st.outlineStyle !== "none" && parseFloat(st.outlineWidth) > 0;
    const box = el.getBoundingClientRect();
    return visible && box.width > 0 && box.height > 0 ? "ok" : `no visible focus on ${el.tagName} (${st.outlineStyle} ${st.outlineWidth})`;
  });
  assert.equal(focus, "ok", `${name}: keyboard focus`);
  await page.keyboard.press("Tab");
  const outline = await page.evaluate(() => {
    const st = getComputedStyle(document.activeElement);
    return `${st.outlineStyle} ${st.outlineWidth}`;
  });
  assert.ok(!outline.startsWith("none"), `${name}: focused element has no outline (${outline})`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

// ---- scenarios ----------------------------------------------------------------------------

const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
let failed = false;
const results = [];

async function scenario(name, fn, allowed = []) {
  const ctx = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" && !allowed.some((a) => m.text().includes(a))) errors.push(m.text());
  });
  const t0 = Date.now();
  try {
    await fn(page);
    assert.deepEqual(errors, [], "errors in the page's console");
    results.push(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed = true;
    results.push(`FAIL ${name}: ${e.message}`);
    await page.screenshot({ path: join(artifacts, `FAILED-${name.replace(/\W+/g, "-")}.png`), fullPage: true }).catch(() => {});
  } finally {
    await ctx.close();
  }
}

async function signIn(page, email) {
  await page.goto(`${base}/login`);
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForLoadState("networkidle");
}

// Whatever happens below, the server goes with this process.
process.on("exit", () => server.kill("SIGKILL"));
process.on("uncaughtException", (e) => { console.error(e); console.error(log.split("\n").slice(-40).join("\n")); process.exit(1); });
process.on("unhandledRejection", (e) => { console.error(e); console.error(log.split("\n").slice(-40).join("\n")); process.exit(1); });

// Fixtures through the API: a view, a macro, a shared organisation for Cora and Dan (Eve
// stays outside it).
await api("POST", "/views", { view: { title: "Open tickets", all: [{ field: "status", operator: "less_than", value: "solved" }],
  output: { columns: ["subject", "requester", "status", "priority", "updated"], sort_by: "created_at", sort_order: "asc" } } });
await api("POST", "/macros", { macro: { title: "Ask for logs", actions: [{ field: "status", value: "pending" },
  { field: "priority", value: "high" },
  { field: "comment_value", value: "Hi {{ticket.requester.first_name}}, could you attach the runner logs?" }] } });
const org = (await api("POST", "/organizations", { organization: { name: "Acme Runners", shared_tickets: true, organization_fields: {} } })).organization;
const users = (await api("GET", "/users")).users;
for (const u of users.filter((u) => ["cora@example.com", "dan@example.com"].includes(u.email))) {
  await api("POST", "/organization_memberships", { organization_membership: { user_id: u.id, organization_id: org.id } });
}

const XSS = `Our runner is offline <img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`;
let ticketUrl = "";

await scenario("customer opens a request in the portal", async (page) => {
  await signIn(page, "cora@example.com");
  assert.match(page.url(), /\/portal$/);
  await a11y(page, "portal home");
  await page.getByRole("link", { name: "Submit a request" }).first().click();
  await page.getByLabel("Subject").fill("Runner offline since the upgrade");
  await page.getByLabel("Description").fill(XSS);
  await a11y(page, "portal new request");
  await shot(page, "portal-new-request");
  await page.getByRole("button", { name: "Submit" }).click();
  await page.waitForURL(/\/portal\/tickets\/\d+$/);
  ticketUrl = page.url().replace("/portal/", "/agent/");
  await page.getByText("Runner offline since the upgrade").first().waitFor();
  assert.equal(await page.evaluate(() => window.__xss), undefined, "customer markup ran in the portal");
});

await scenario("agent signs in, opens a view, replies publicly and internally, applies a macro", async (page) => {
  await signIn(page, "agent@example.com");
  assert.match(page.url(), /\/agent\/views\/\d+$/);
  await page.locator(".count").first().filter({ hasText: /\d/ }).waitFor(); // live counts arrived
  await a11y(page, "view");
  await shot(page, "agent-view");
  await page.getByRole("link", { name: "Runner offline since the upgrade" }).click();
  await page.waitForURL(/\/agent\/tickets\/\d+$/);
  // The customer's markup is shown as text and never runs.
  await page.getByText("<script>window.__xss=2</script>", { exact: false }).first().waitFor();
  assert.equal(await page.evaluate(() => window.__xss), undefined, "customer markup ran in the agent workspace");
  assert.equal(await page.locator(".conversation img").count(), 0);
  // A public reply.
  await page.getByLabel("Public reply").check();
  await page.getByLabel("Comment").fill("Thanks Cora. Could you restart the runner service?");
  await page.getByLabel("Status", { exact: true }).selectOption("pending");
  await page.getByRole("button", { name: "Submit" }).click();
  await page.waitForLoadState("networkidle");
  await page.locator(".comment.public", { hasText: "Could you restart the runner service?" }).waitFor();
  // An internal note, with the keyboard: r focuses the reply box, Ctrl+Enter submits.
  await page.getByLabel("Internal note").check();
  await page.locator("body").click({ position: { x: 1, y: 1 } });
  await page.keyboard.press("r");
  assert.equal(await page.evaluate(() => document.activeElement.id), "body");
  await page.keyboard.type("Customer is still on runner 15.x; upgrade path is known.");
  await page.keyboard.press("Control+Enter");
  await page.waitForLoadState("networkidle");
  await page.locator(".comment.internal", { hasText: "upgrade path is known" }).waitFor();
  // A macro: preview first, then apply.
  await page.getByLabel("Apply a macro").selectOption({ label: "Ask for logs" });
  await page.locator("#macro-preview").getByText("Hi Cora, could you attach the runner logs?").waitFor();
  await page.locator("#macro-preview").getByText("Priority: high").waitFor();
  await shot(page, "agent-ticket-macro-preview");
  await page.getByRole("button", { name: "Apply macro" }).click();
  await page.waitForLoadState("networkidle");
  await page.locator(".comment.public", { hasText: "could you attach the runner logs?" }).waitFor();
  await a11y(page, "ticket");
  await page.locator("details", { hasText: "History" }).locator("summary").click();
  await shot(page, "agent-ticket");
});

await scenario("customer sees the public reply but not the internal note", async (page) => {
  await signIn(page, "cora@example.com");
  await page.goto(ticketUrl.replace("/agent/", "/portal/"));
  await page.getByText("Could you restart the runner service?").waitFor();
  await page.getByText("could you attach the runner logs?").waitFor();
  assert.equal(await page.getByText("upgrade path is known").count(), 0, "internal note shown to the customer");
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await page.getByLabel("Add a reply").fill("Restarted it; logs attached soon.");
  await page.getByRole("button", { name: "Send" }).click();
  await page.waitForLoadState("networkidle");
  await page.getByText("Restarted it; logs attached soon.").waitFor();
  await a11y(page, "portal request");
  await shot(page, "portal-request");
});

await scenario("a colleague in the shared organisation sees it", async (page) => {
  await signIn(page, "dan@example.com");
  await page.getByRole("heading", { name: "My organization's requests" }).waitFor();
  await page.getByRole("link", { name: /Runner offline since the upgrade/ }).waitFor();
});

await scenario("an outsider does not", async (page) => {
  await signIn(page, "eve@example.com");
  assert.equal(await page.getByText("Runner offline since the upgrade").count(), 0);
  const r = await page.goto(ticketUrl.replace("/agent/", "/portal/"));
  assert.equal(r.status(), 404);
}, ["status of 404"]);

await scenario("customer-written HTML is sanitised in both the portal and the workspace", async (page) => {
  // An HTML comment by the customer, through the API (as mail or a widget would write it).
  const id = ticketUrl.split("/").pop();
  const cora = (await api("GET", "/users/search?query=cora%40example.com")).users[0];
  await api("PUT", `/tickets/${id}`, { ticket: { comment: { author_id: cora.id, public: true,
    html_body: `<p>Logs attached</p><img src=x onerror="window.__xss=3"><a href="javascript:window.__xss=4">open logs</a><svg onload="window.__xss=5"></svg>` } } });
  for (const [who, url] of [["cora@example.com", ticketUrl.replace("/agent/", "/portal/")], ["agent@example.com", ticketUrl]]) {
    await page.context().clearCookies();
    await signIn(page, who);
    await page.goto(url);
    await page.getByText("Logs attached", { exact: true }).waitFor();
    const link = page.getByText("open logs");
    if (await link.count()) await link.first().click({ trial: false }).catch(() => {});
    assert.equal(await page.evaluate(() => window.__xss), undefined, `markup ran for ${who}`);
    assert.equal(await page.locator(".conversation [onerror], .conversation [onload], .conversation a[href^='javascript']").count(), 0);
  }
}, ["status of 404"]); // the sanitised <img src=x> still asks for "x"

await scenario("admin creates a trigger in the builder and sees it fire", async (page) => {
  await signIn(page, "admin@example.com");
  await page.goto(`${base}/admin/triggers/new`);
  await page.getByLabel("Title").fill("Outages are urgent");
  const all = page.locator('fieldset[data-prefix="all"] .rule-row');
  // The builder offers only valid operators and values once a field is chosen.
  const second = all.nth(1);
  await second.getByLabel("Field").selectOption("comment_includes_word");
  const ops = await second.locator('select[name="all_operator"] option').allTextContents();
  assert.ok(ops.includes("is") && !ops.includes("less than"), `operators for comment_includes_word: ${ops}`);
  await second.locator('select[name="all_operator"]').selectOption("is");
  await second.getByLabel("Value").fill("outage");
  const act = page.locator('fieldset[data-prefix="action"] .rule-row').first();
  await act.getByLabel("Field").selectOption("priority");
  await act.locator('select[name="action_value"]').selectOption("urgent");
  await a11y(page, "trigger editor");
  await shot(page, "admin-trigger-editor");
  await page.getByRole("button", { name: "Save trigger" }).click();
  await page.waitForURL(/\/admin\/triggers$/);
  await page.getByRole("link", { name: "Outages are urgent", exact: true }).waitFor();
  await a11y(page, "admin list");
  await shot(page, "admin-triggers");
  // It fires: a new ticket mentioning an outage becomes urgent, and the page says why.
  await page.goto(`${base}/agent/tickets/new`);
  await page.getByLabel("Requester email").fill("dan@example.com");
  await page.getByLabel("Subject").fill("Total outage");
  await page.getByLabel("Description").fill("We have an outage on every runner.");
  await page.getByRole("button", { name: "Create ticket" }).click();
  await page.waitForURL(/\/agent\/tickets\/\d+$/);
  await page.locator(".badge", { hasText: "priority urgent" }).waitFor();
  await page.locator("details", { hasText: "Why did this happen?" }).locator("summary").click();
  await page.getByText("Outages are urgent (pass 1)").waitFor();
});

await scenario("bulk update from a view, and search", async (page) => {
  await signIn(page, "agent@example.com");
  await page.locator("tbody tr").first().waitFor();
  await page.locator('tbody input[type="checkbox"]').first().check();
  await page.getByLabel("Priority").selectOption("low");
  await page.getByRole("button", { name: "Update selected" }).click();
  await page.waitForLoadState("networkidle");
  const t = (await api("GET", "/tickets?sort_by=created_at&sort_order=asc")).tickets[0];
  assert.equal(t.priority, "low");
  await page.keyboard.press("/");
  await page.keyboard.type("status<solved upgrade");
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/agent\/search/);
  await page.getByText("1 result(s)").waitFor();
  await a11y(page, "search");
  await shot(page, "agent-search");
});

await scenario("manager dashboards: overview, numbers, team week, engineer, week in review", async (page) => {
  await signIn(page, "admin@example.com");
  await page.getByRole("link", { name: "Dashboards" }).click();
  await page.waitForURL(/\/manager$/);
  assert.equal(await page.locator("svg.chart").count(), 4);
  // Each chart's numbers are one click away.
  const fig = page.locator("figure", { hasText: "Tickets per week" });
  await fig.getByText("Numbers").click();
  await fig.locator("table.numbers tbody tr").first().waitFor();
  assert.ok((await fig.getByRole("link", { name: "Download as CSV" }).getAttribute("href")).startsWith("/manager/kpis/tickets.csv?"));
  await a11y(page, "dashboard overview");
  await shot(page, "manager-overview");
  await page.getByRole("link", { name: "Team week" }).click();
  await page.getByRole("heading", { name: /Team week/ }).waitFor();
  await a11y(page, "team week");
  await page.getByRole("link", { name: "Alan Agent" }).first().click();
  await page.getByRole("heading", { name: "Alan Agent" }).waitFor();
  assert.equal(await page.locator("svg.chart").count(), 3);
  await a11y(page, "engineer page");
  await shot(page, "manager-engineer");
  await page.getByRole("link", { name: "Week in review" }).click();
  await page.getByRole("heading", { name: /Support week in review/ }).waitFor();
  await a11y(page, "week in review");
});

await scenario("sign-in page", async (page) => {
  await page.goto(`${base}/login`);
  await a11y(page, "login");
  await shot(page, "login");
  await page.getByLabel("Email", { exact: true }).fill("agent@example.com");
  await page.getByLabel("Password").fill("wrong-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("do not match an active account").waitFor();
}, ["status of 401"]);

await browser.close();
server.kill("SIGTERM");
rmSync(data, { recursive: true, force: true });
console.log(results.join("\n"));
console.log(`screenshots in ${artifacts}`);
if (failed) {
  console.log("---- server log (tail) ----\n" + log.split("\n").slice(-40).join("\n"));
  process.exit(1);
}
