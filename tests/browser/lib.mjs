// Helpers for scenarios.mjs: launching Debian's Chromium through playwright-core,
// recording a page's WebSockets frame by frame, and reading what a person sees on a
// page (the Bokeh document, the error page's heading, text and links).

import { chromium } from 'playwright-core';

/** Debian's Chromium: playwright-core never downloads a browser of its own. */
export const CHROMIUM = '/usr/bin/chromium';

/** Headless, no sandbox (root in a container), and no traffic of Chromium's own. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** Playwright's own waits (selectors, navigations) never exceed this. */
export const STEP_MS = 20_000;

const started = Date.now();

/** Milliseconds since this process started: the clock of every fact reported. */
export function now() {
  return Date.now() - started;
}

/** Writes one JSON line for tests/browser.rs. */
export function emit(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/**
 * Starts Chromium. `launch` (not a persistent context) makes playwright create a
 * fresh profile, `--user-data-dir=$TMPDIR/playwright_chromiumdev_profile-*`, for this
 * browser alone and delete it on close; the Rust test points TMPDIR at a directory
 * it removes itself, so a killed run leaves nothing behind either.
 */
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: STEP_MS,
  });
}

/** A fresh context (its own cookie jar) with `cookies` (playwright's shape) preset. */
export async function newContext(browser, cookies = []) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  context.setDefaultTimeout(STEP_MS);
  context.setDefaultNavigationTimeout(STEP_MS);
  if (cookies.length > 0) {
    await context.addCookies(cookies);
  }
  return context;
}

/** The Bokeh message type of a header frame (`{"msgid": …, "msgtype": …}`), or null. */
function msgtype(payload) {
  if (typeof payload !== 'string' || !payload.startsWith('{') || !payload.includes('"msgtype"')) {
    return null;
  }
  try {
    return JSON.parse(payload).msgtype ?? null;
  } catch {
    return null;
  }
}

/**
 * Records every WebSocket `page` opens from now on: its URL, when it was created and
 * closed, the time of each frame received and the Bokeh message types among them.
 */
export function recordSockets(page) {
  const sockets = [];
  page.on('websocket', (ws) => {
    const socket = {
      url: ws.url(),
      created_ms: now(),
      closed_ms: null,
      error: null,
      frames_ms: [],
      patch_docs_ms: [],
      msgtypes: {},
    };
    ws.on('framereceived', (frame) => {
      const t = now();
      socket.frames_ms.push(t);
      const type = msgtype(frame.payload);
      if (type !== null) {
        socket.msgtypes[type] = (socket.msgtypes[type] ?? 0) + 1;
        if (type === 'PATCH-DOC') {
          socket.patch_docs_ms.push(t);
        }
      }
    });
    ws.on('socketerror', (error) => {
      socket.error = String(error);
    });
    ws.on('close', () => {
      socket.closed_ms = now();
    });
    sockets.push(socket);
  });
  return sockets;
}

/** The last socket whose URL ends with `suffix`, or null. */
export function socketEndingWith(sockets, suffix) {
  return sockets.filter((s) => s.url.endsWith(suffix)).at(-1) ?? null;
}

/**
 * What a socket did between `from` and `to` (ms on the `now()` clock): frames and
 * Bokeh PATCH-DOC messages in total and per second, and whether it closed.
 */
export function socketWindow(socket, from, to) {
  const seconds = Math.max(1, Math.round((to - from) / 1000));
  const perSecond = (times) => {
    const counts = new Array(seconds).fill(0);
    for (const t of times) {
      if (t >= from && t < to) {
        counts[Math.min(seconds - 1, Math.floor((t - from) / 1000))] += 1;
      }
    }
    return counts;
  };
  return {
    url: socket.url,
    window_ms: to - from,
    frames_per_second: perSecond(socket.frames_ms),
    patch_docs_per_second: perSecond(socket.patch_docs_ms),
    msgtypes: socket.msgtypes,
    closed: socket.closed_ms !== null,
    closed_at_ms: socket.closed_ms === null ? null : socket.closed_ms - from,
    error: socket.error,
  };
}

/** Waits until `socket` has received a Bokeh message of `type` (the document's pull). */
export async function waitForMessage(page, socket, type) {
  const deadline = Date.now() + STEP_MS;
  while (!(socket.msgtypes[type] > 0)) {
    if (Date.now() > deadline) {
      throw new Error(`${socket.url}: no ${type} within ${STEP_MS} ms`);
    }
    await page.waitForTimeout(100);
  }
}

/** Waits until the page's Bokeh document exists and has rendered views. */
export async function waitForBokeh(page) {
  await page.waitForFunction(
    () =>
      window.Bokeh?.documents?.length > 0 &&
      window.Bokeh.documents[0].roots().length > 0 &&
      Object.keys(window.Bokeh.index ?? {}).length > 0,
    null,
    { timeout: STEP_MS },
  );
  // Bokeh draws plots on canvases inside shadow roots; locators pierce them. Any
  // drawn canvas will do: the first in the tree need not be one that is shown.
  const drawn = page.locator('canvas').filter({ visible: true }).first();
  try {
    await drawn.waitFor({ state: 'visible', timeout: STEP_MS });
  } catch (error) {
    const facts = await pageFacts(page).catch((e) => ({ unreadable: String(e) }));
    // Neither the page's text nor its cookies belong in a test's failure message.
    delete facts.text;
    delete facts.document_cookie;
    throw new Error(`${error.message}\nwhat the page showed: ${JSON.stringify(facts)}`);
  }
}

/** What the browser shows for the document in `page`, Bokeh or not. */
export async function pageFacts(page) {
  const facts = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const meta = document.querySelector('meta[http-equiv="refresh" i]');
    const bokeh = window.Bokeh;
    return {
      href: location.href,
      status: nav?.responseStatus ?? null,
      navigation_entries: performance.getEntriesByType('navigation').map((e) => e.name),
      history_length: history.length,
      title: document.title,
      h1: document.querySelector('h1')?.textContent?.trim() ?? null,
      text: (document.body?.innerText ?? '').slice(0, 4000),
      links: Array.from(document.querySelectorAll('a[href]')).map((a) => ({
        text: a.textContent.trim(),
        href: a.getAttribute('href'),
      })),
      meta_refresh: meta?.getAttribute('content') ?? null,
      document_cookie: document.cookie,
      bokeh_version: bokeh?.version ?? null,
      bokeh_documents: bokeh?.documents?.length ?? 0,
      bokeh_roots: bokeh?.documents?.[0]?.roots().length ?? 0,
      bokeh_views: Object.keys(bokeh?.index ?? {}).length,
      root_elements: document.querySelectorAll('[data-root-id], .bk-root, .bk-Figure').length,
    };
  });
  facts.canvases = await page.locator('canvas').count();
  facts.drawn_canvases = await page.locator('canvas').filter({ visible: true }).count();
  return facts;
}
