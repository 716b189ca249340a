// Drives the dashboard in headless Chromium (playwright-core, the system's
// /usr/bin/chromium). Usage: node browser.mjs BASE_URL TOKEN OUT_DIR PID POD
// (POD: namespace/name of a pod with a process, for the pod stats panel).
// Exits non-zero with a message on the first failed check.
import { chromium } from "playwright-core";

const [base, token, outDir, pid, podName] = process.argv.slice(2);
const fail = (msg) => { console.error("FAIL: " + msg); process.exit(1); };
const auth = { "Content-Type": "application/json", Authorization: "Bearer " + token };
const report = (kernel) => fetch(base + "/api/v1/metrics", {
  method: "POST", headers: auth,
  body: JSON.stringify({ usersched_pid: 4321, nr_queued: 7, nr_scheduled: 0, nr_running: 2, nr_online_cpus: 2,
    nr_user_dispatches: 0, nr_kernel_dispatches: kernel, nr_cancel_dispatches: 0, nr_bounce_dispatches: 0,
    nr_failed_dispatches: 0, nr_sched_congested: 0 }),
}).then((r) => { if (!r.ok) fail("POST metrics " + r.status); });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const timer = setTimeout(() => { console.error("FAIL: timeout"); process.exit(2); }, 90_000);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // Console errors other than failed loads (the 401 below is on purpose;
  // every other answer must be a success, checked through the responses).
  page.on("console", (m) => { if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text()); });
  page.on("response", (r) => {
    const expected = r.status() === 401 && r.request().method() === "POST";
    if (r.status() >= 400 && !expected) errors.push(r.status() + " " + r.request().method() + " " + r.url());
  });

  // Every request must go to the agent (no CDN, works offline).
  const external = [];
  page.on("request", (r) => { if (!r.url().startsWith(base) && !r.url().startsWith("data:")) external.push(r.url()); });
  await report(1000);
  const resp = await page.goto(base + "/dashboard", { waitUntil: "load" });
  if (resp.status() !== 200) fail("GET /dashboard " + resp.status());
  // Live data arrives.
  await page.waitForFunction(() => document.getElementById("mode").textContent === "api-only", null, { timeout: 15000 });
  await page.waitForFunction(() => document.getElementById("source").textContent === "external", null, { timeout: 15000 });
  await page.waitForFunction(() => /1000/.test(document.getElementById("kpi-kernel_dispatches")?.textContent || ""), null, { timeout: 15000 });

  // First load, as transferred on the wire (Resource Timing): the page
  // itself, and the page plus the API answers of the first poll.
  const transfer = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const res = performance.getEntriesByType("resource");
    return { page: nav.transferSize, with_first_poll: nav.transferSize + res.reduce((a, r) => a + r.transferSize, 0) };
  });
  if (external.length) fail("requests outside the agent: " + external.join(", "));

  // Charts update: new reports make the rate series grow and show the rate.
  const points = () => page.evaluate(() => Number(document.querySelector('#chart-dispatch polyline[data-series="nr_kernel_dispatches"]')?.dataset.points || 0));
  for (let i = 1; i <= 3; i++) {
    await new Promise((r) => setTimeout(r, 1100));
    await report(1000 + i * 500);
  }
  await page.waitForFunction(() => /2500/.test(document.getElementById("kpi-kernel_dispatches")?.textContent || ""), null, { timeout: 15000 });
  const p1 = await points();
  if (p1 < 2) fail("the dispatch chart has " + p1 + " points after 3 new reports");
  await new Promise((r) => setTimeout(r, 1100));
  await report(4000);
  await page.waitForFunction((n) => Number(document.querySelector('#chart-dispatch polyline[data-series="nr_kernel_dispatches"]')?.dataset.points || 0) > n, p1, { timeout: 15000 });
  const tasksLine = await page.$('#chart-tasks polyline[data-series="nr_queued"]');
  if (!tasksLine) fail("no queued series in the tasks chart");

  // Post a strategy from the page: without a token it is refused...
  const strategy = JSON.stringify({ strategies: [{ priority: true, execution_time: 3000000, pid: Number(pid) }] });
  await page.fill("#editor", strategy);
  await page.fill("#token", "");
  await page.click("#post");
  await page.waitForFunction(() => document.getElementById("post-result").dataset.status === "401", null, { timeout: 10000 });
  // ...with the token it is saved, and the API's answer changes.
  await page.fill("#token", token);
  await page.click("#post");
  await page.waitForFunction(() => document.getElementById("post-result").dataset.status === "200", null, { timeout: 10000 });
  const api = await (await fetch(base + "/api/v1/scheduling/strategies")).json();
  const hit = (api.scheduling || []).find((s) => s.pid === Number(pid));
  if (!hit || hit.priority !== true || hit.execution_time !== 3000000) fail("the API does not show the posted strategy: " + JSON.stringify(api));
  await page.waitForSelector(`#resolved tr[data-pid="${pid}"]`, { timeout: 10000 });

  // A second strategy that matches no pod: the agent's strategy_no_pids
  // rule (for_secs 0 in the test's alerts file) fires and the alerts panel
  // shows it; the strategy panel shows both strategies, the PID one with
  // measured figures; the pod panel shows the test pod with figures.
  const two = { strategies: [{ priority: true, execution_time: 3000000, pid: Number(pid) },
    { priority: true, execution_time: 2000000, selectors: [{ key: "no", value: "such-pod" }] }] };
  const posted = await fetch(base + "/api/v1/scheduling/strategies", { method: "POST", headers: auth, body: JSON.stringify(two) });
  if (!posted.ok) fail("POST two strategies " + posted.status);
  await page.waitForSelector('#alerts tr[data-alert="strategy_no_pids"]', { timeout: 15000 });
  const alertText = await page.textContent('#alerts tr[data-alert="strategy_no_pids"]');
  if (!/strategy_index=1/.test(alertText) || !/no=such-pod/.test(alertText)) fail("the alert row lacks its labels: " + alertText);
  const number = (sel) => page.waitForFunction((s) => /^[0-9.]+$/.test(document.querySelector(s)?.textContent || ""), sel, { timeout: 15000 });
  await page.waitForSelector('#strategy-stats tr[data-index="1"]', { timeout: 15000 });
  await number('#strategy-stats tr[data-index="0"] td.cpu');
  await number(`#pod-stats tr[data-pod="${podName}"] td.cpu`);

  // History charts: the pod's CPU and run-queue wait, and both strategies'.
  const seriesPoints = (chart, id) => page.evaluate(([c, i]) => Number([...document.querySelectorAll(`#chart-${c} polyline`)]
    .find((l) => l.dataset.series === i)?.dataset.points || 0), [chart, id]);
  const growsTo = (chart, id, n) => page.waitForFunction(([c, i, k]) => Number([...document.querySelectorAll(`#chart-${c} polyline`)]
    .find((l) => l.dataset.series === i)?.dataset.points || 0) >= k, [chart, id, n], { timeout: 15000 })
    .catch(() => fail(`the ${chart} chart has no ${n}-point line for ${id}: ` + JSON.stringify(id)));
  for (const c of ["pod-cpu", "pod-wait"]) await growsTo(c, podName, 2);
  const strategyIds = [`#0 pid ${pid}`, "#1 no=such-pod"];
  for (const c of ["strategy-cpu", "strategy-wait"]) for (const id of strategyIds) await growsTo(c, id, 2);
  // Told apart without colour: every line of a chart has its own dash
  // pattern and number, and the legend names it.
  const looks = await page.evaluate(() => ["dispatch", "strategy-cpu", "strategy-wait"].map((c) => {
    const lines = [...document.querySelectorAll(`#chart-${c} polyline`)];
    return { chart: c, lines: lines.length, dashes: new Set(lines.map((l) => l.getAttribute("stroke-dasharray"))).size,
      marks: document.querySelectorAll(`#chart-${c} text.mark`).length,
      legend: [...document.querySelectorAll(`#legend-${c} [data-legend]`)].map((e) => e.textContent) };
  }));
  for (const l of looks) {
    if (l.lines < 2 || l.dashes !== l.lines || l.marks !== l.lines) fail("lines not told apart without colour: " + JSON.stringify(l));
  }
  const strategyLegend = looks.find((l) => l.chart === "strategy-cpu").legend.join(" | ");
  if (!strategyLegend.includes("1 " + strategyIds[0]) || !strategyLegend.includes("2 " + strategyIds[1])) fail("strategy legend: " + strategyLegend);
  const podLegend = await page.textContent("#legend-pod-cpu");
  if (!podLegend.includes("1 " + podName)) fail("pod legend: " + podLegend);

  // The status line is a polite live region that says what the agent is.
  const status = () => page.evaluate(() => { const e = document.getElementById("status"); return { live: e.getAttribute("aria-live"), text: e.textContent }; });
  const st = await status();
  if (st.live !== "polite" || !/api-only/.test(st.text) || !/[1-9][0-9]* alerts? firing/.test(st.text)) fail("status line: " + JSON.stringify(st));
  await page.waitForFunction(() => document.getElementById("updated").textContent.startsWith("updated"), null, { timeout: 5000 });

  await page.screenshot({ path: outDir + "/dashboard.png", fullPage: true });
  // The other colour scheme: other colours, the same page.
  const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const light = await background();
  await page.emulateMedia({ colorScheme: "dark" });
  const dark = await background();
  const lum = (c) => c.match(/\d+/g).slice(0, 3).reduce((a, v) => a + Number(v), 0);
  if (!(lum(dark) < lum(light))) fail(`dark scheme background ${dark} is not darker than light ${light}`);
  await new Promise((r) => setTimeout(r, 300));
  await page.screenshot({ path: outDir + "/dashboard-dark.png", fullPage: true });
  await page.emulateMedia({ colorScheme: "light" });

  // The agent unreachable: the status line says so, then recovers.
  await page.route(base + "/api/v1/metrics", (r) => r.abort());
  await page.waitForFunction(() => /agent unreachable/.test(document.getElementById("status").textContent), null, { timeout: 10000 })
    .catch(async () => fail("no error in the status line: " + (await status()).text));
  const unreachable = (await status()).text;
  await page.unroute(base + "/api/v1/metrics");
  await page.waitForFunction(() => /api-only/.test(document.getElementById("status").textContent), null, { timeout: 10000 });

  // A fresh page draws the pod history the agent kept, not only what it polls.
  const kept = (await (await fetch(base + "/api/v1/pods/stats?points=300")).json()).pods
    .find((x) => x.namespace + "/" + x.name === podName)?.history.length || 0;
  if (kept < 5) fail("the agent kept " + kept + " points of the pod's history");
  await page.reload({ waitUntil: "load" });
  await growsTo("pod-cpu", podName, kept);
  const drawn = await seriesPoints("pod-cpu", podName);

  // Phone width: nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await new Promise((r) => setTimeout(r, 300));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.screenshot({ path: outDir + "/dashboard-phone.png", fullPage: true });
  if (overflow > 1) fail("the page is " + overflow + " px wider than a 390 px phone");
  if (errors.length) fail("page errors: " + errors.join(" | "));
  console.log(JSON.stringify({ alert_row: alertText, first_load_bytes: transfer.page, first_load_with_first_poll_bytes: transfer.with_first_poll, chart_points: p1, overflow_px: overflow,
    pod_history_kept: kept, pod_history_drawn_on_load: drawn, light_background: light, dark_background: dark, status: st.text, status_unreachable: unreachable }));
} finally {
  clearTimeout(timer);
  await browser.close();
}
