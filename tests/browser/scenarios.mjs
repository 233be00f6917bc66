// The browser scenarios of tests/browser.rs (issue 6), one per run:
//
//   node scenarios.mjs '<json>'
//
// The JSON names the scenario, its URLs, the cookies to preset and a time budget.
// The script prints JSON lines: `{"event": "progress", …}` while it runs (the Rust
// test reacts to some of them), then exactly one `{"event": "result", "result": …}`
// with what the browser saw, or `{"event": "error", "message": …}`. It judges
// nothing itself: the assertions are in tests/browser.rs.
//
// Standard input is a lifeline: when the test process goes away (stdin closes) the
// browser is closed and the script exits, as it does when its budget runs out.

import {
  emit,
  launch,
  newContext,
  now,
  pageFacts,
  recordSockets,
  socketEndingWith,
  socketWindow,
  waitForBokeh,
  waitForMessage,
} from './lib.mjs';

/**
 * Opens `url` as a person does from REANA's web UI (or any page listing dashboard
 * links): by clicking a link with target=_blank, which opens a new tab. Returns the
 * tab and the navigation requests made in it, redirects included.
 */
async function clickLinkToNewTab(context, url, onTab = () => {}) {
  const navigations = [];
  context.on('request', (request) => {
    if (request.isNavigationRequest()) {
      navigations.push(request);
    }
  });
  context.on('page', onTab);
  const reana = await context.newPage();
  const href = url.replaceAll('&', '&amp;').replaceAll('"', '&quot;');
  await reana.setContent(`<!DOCTYPE html><title>REANA</title><a id="dashboard-icon" href="${href}" target="_blank">Dashboard</a>`);
  const [tab] = await Promise.all([context.waitForEvent('page'), reana.click('#dashboard-icon')]);
  await tab.waitForLoadState('domcontentloaded');
  const ofTab = () => navigations.filter((r) => r.frame().page() === tab);
  return { tab, navigations: ofTab };
}

/**
 * The click path: holding only REANA's `session` cookie, the user clicks the
 * Dashboard icon, watches the live status page, then clicks through to Workers and
 * Tasks in the dashboard's own navigation bar.
 */
async function clickPath(browser, input) {
  const context = await newContext(browser, input.cookies);
  const sockets = new Map();
  const record = (page) => sockets.set(page, recordSockets(page));
  const { tab } = await clickLinkToNewTab(context, input.dashboard_url, record);
  const tabSockets = sockets.get(tab);
  await waitForBokeh(tab);
  const status = socketEndingWith(tabSockets, '/status/ws');
  if (status === null) {
    throw new Error(`the status page opened no Bokeh WebSocket: ${JSON.stringify(tabSockets)}`);
  }
  await waitForMessage(tab, status, 'PULL-DOC-REPLY');
  emit({ event: 'progress', step: 'status page rendered' });

  const from = now();
  await tab.waitForTimeout(input.watch_ms);
  const watched = socketWindow(status, from, now());
  const statusFacts = await pageFacts(tab);
  await tab.screenshot({ path: input.screenshots.dashboard });

  const visited = {};
  for (const name of ['workers', 'tasks']) {
    await tab.click(`#myTopnav a[href="${name}"]`);
    await tab.waitForURL((url) => url.pathname.endsWith(`/${name}`));
    await waitForBokeh(tab);
    const socket = socketEndingWith(tabSockets, `/${name}/ws`);
    if (socket === null) {
      throw new Error(`the ${name} page opened no Bokeh WebSocket`);
    }
    await waitForMessage(tab, socket, 'PULL-DOC-REPLY');
    await tab.waitForTimeout(1000);
    visited[name] = { facts: await pageFacts(tab), socket: socketWindow(socket, socket.created_ms, now()) };
    await tab.screenshot({ path: input.screenshots[name] });
  }
  return {
    tabs: context.pages().length,
    status: { facts: statusFacts, socket: watched },
    workers: visited.workers,
    tasks: visited.tasks,
    cookies: (await context.cookies()).map((c) => c.name),
  };
}

/** The redirects that led to the last navigation `request`, oldest first. */
async function redirectChain(request) {
  const chain = [];
  while (request !== null) {
    const r = await request.response();
    chain.unshift({ url: request.url(), status: r?.status() ?? null, location: r?.headers().location ?? null });
    request = request.redirectedFrom();
  }
  return chain;
}

/** A dashboard link carrying an access token, clicked in a fresh browser. */
async function tokenLink(browser, input) {
  const context = await newContext(browser);
  const sockets = new Map();
  const record = (page) => sockets.set(page, recordSockets(page));
  const { tab: page, navigations } = await clickLinkToNewTab(context, input.url, record);
  const tabSockets = sockets.get(page);
  await waitForBokeh(page);
  const redirects = await redirectChain(navigations().at(-1) ?? null);
  const status = socketEndingWith(tabSockets, '/status/ws');
  if (status === null) {
    throw new Error('the dashboard opened no Bokeh WebSocket');
  }
  await waitForMessage(page, status, 'PULL-DOC-REPLY');
  const from = now();
  await page.waitForTimeout(input.watch_ms);
  const watched = socketWindow(status, from, now());
  const facts = await pageFacts(page);
  const html = await page.content();
  await page.screenshot({ path: input.screenshot });
  const cookies = (await context.cookies()).map((c) => ({
    name: c.name,
    domain: c.domain,
    path: c.path,
    http_only: c.httpOnly,
    secure: c.secure,
    same_site: c.sameSite,
  }));
  // Going back must not land on the token URL: the tab has nothing before the clean one.
  const back = await page.goBack({ timeout: 5000 }).catch((e) => `error: ${e.message}`);
  return {
    redirects,
    facts,
    socket: watched,
    socket_urls: tabSockets.map((s) => s.url),
    html_contains_token: html.includes(input.token),
    cookies,
    back: back === null ? null : typeof back === 'string' ? back : back.url(),
    href_after_back: page.url(),
  };
}

/**
 * Cross-site WebSocket hijacking. The user's cookies are in the browser; first the
 * dashboard itself (same origin) opens its socket, then each attack page, served on
 * another origin, tries to open the dashboard's Bokeh WebSocket.
 */
async function hijack(browser, input) {
  const context = await newContext(browser, input.cookies);
  const own = await context.newPage();
  const ownSockets = recordSockets(own);
  await own.goto(input.dashboard_url);
  await waitForBokeh(own);
  const status = socketEndingWith(ownSockets, '/status/ws');
  if (status === null) {
    throw new Error('the dashboard opened no Bokeh WebSocket');
  }
  await waitForMessage(own, status, 'PULL-DOC-REPLY');
  const control = socketWindow(status, status.created_ms, now());

  const attacks = [];
  for (const attack of input.attacks) {
    const page = await context.newPage();
    await page.goto(attack.url);
    await page.waitForFunction(() => window.attack?.done || window.attack?.opened, null, {
      timeout: 10_000,
    });
    // Whatever happens next (messages, a close) has a moment to happen.
    await page.waitForTimeout(1500);
    attacks.push({ name: attack.name, origin: await page.evaluate(() => location.origin), ...(await page.evaluate(() => window.attack)) });
    await page.close();
  }
  return { control, attacks };
}

/** Opens each URL in its own fresh context and reports the page a person sees. */
async function visits(browser, input) {
  const seen = [];
  for (const visit of input.visits) {
    const context = await newContext(browser, visit.cookies);
    const page = await context.newPage();
    const response = await page.goto(visit.url);
    const facts = await pageFacts(page);
    await page.screenshot({ path: visit.screenshot });
    seen.push({ name: visit.name, response_status: response?.status() ?? null, ...facts });
    await context.close();
  }
  return { visits: seen };
}

/**
 * A starting cluster: the 503 page, then, with no action in the browser (its meta
 * refresh reloads the page), the dashboard once the test marks the scheduler ready.
 */
async function starting(browser, input) {
  const context = await newContext(browser, input.cookies);
  const page = await context.newPage();
  const navigations = [];
  page.on('response', (r) => {
    if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) {
      navigations.push({ url: r.url(), status: r.status(), at_ms: now() });
    }
  });
  await page.goto(input.url);
  const first = await pageFacts(page);
  await page.screenshot({ path: input.screenshots.starting });
  const seen = now();
  emit({ event: 'progress', step: 'starting page shown', status: first.status });

  // From here on the script only looks: no goto, reload or click.
  const deadline = Date.now() + input.wait_ms;
  let rendered = false;
  while (!rendered && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    rendered = await page
      .evaluate(() => window.Bokeh?.documents?.length > 0)
      .catch(() => false); // the page is being replaced by its own refresh
  }
  if (rendered) {
    await waitForBokeh(page);
    await page.screenshot({ path: input.screenshots.ready });
  }
  return {
    first,
    rendered,
    waited_ms: now() - seen,
    navigations,
    last: await pageFacts(page),
  };
}

const SCENARIOS = { click_path: clickPath, token_link: tokenLink, hijack, visits, starting };

async function main() {
  const input = JSON.parse(process.argv[2] ?? '{}');
  const scenario = SCENARIOS[input.scenario];
  if (scenario === undefined) {
    emit({ event: 'error', message: `unknown scenario ${input.scenario}` });
    process.exit(64);
  }
  let browser = null;
  let quitting = false;
  const quit = async (code, message) => {
    if (quitting) {
      return; // the first reason to stop is the one reported
    }
    quitting = true;
    if (message !== undefined) {
      emit({ event: 'error', message });
    }
    const closing = browser?.close().catch(() => {});
    await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 5000))]);
    process.exit(code);
  };
  setTimeout(() => quit(3, `${input.scenario}: over its budget of ${input.budget_ms} ms`), input.budget_ms);
  process.stdin.on('end', () => quit(4, 'standard input closed: the test is gone'));
  process.stdin.resume();

  try {
    browser = await launch();
    emit({ event: 'progress', step: 'browser started', version: browser.version() });
    const result = await scenario(browser, input);
    emit({ event: 'result', result });
    await quit(0);
  } catch (error) {
    await quit(1, `${input.scenario}: ${error?.stack ?? error}`);
  }
}

main();
