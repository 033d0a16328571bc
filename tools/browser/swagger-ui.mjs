// The gateway's Swagger UI in a real browser: Debian's Chromium, driven by playwright-core.
//
//   node tools/browser/swagger-ui.mjs <gateway base URL> <output dir> [user id]
//
// Opens <base>/swagger/index.html, checks that the page lists POST /orders and
// GET /orders/{order_id}, uses "Try it out" on POST /orders with a valid order, clicks
// Execute, and reads the 200 and the new order_id from the page. Also checks that the
// page loaded nothing from anywhere but the gateway. Writes <output dir>/swagger-ui.png
// (the whole page, with the response), or swagger-ui-failure.png when a step fails.
// With SWAGGER_BEARER_TOKEN set (a gateway with GATEWAY_AUTH=jwt), it first clicks
// Authorize, enters the token for the bearer scheme, and checks that the request it
// executes carries it; the screenshot is then swagger-ui-authorized.png.
// Prints one last line `RESULT {"order_id": ..., "user_id": ..., ...}` and exits 0; on
// any failure it prints what failed and exits 1. crates/services/gateway/tests/integration/swagger_ui.rs runs
// it against a real gateway and orders and checks the order exists.
//
// Chromium is /usr/bin/chromium unless CHROMIUM names another; scripts/setup-test-tools.sh
// installs it and this directory's node_modules (playwright-core, which downloads no browser).
import { mkdtempSync, mkdirSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const SETUP = "run scripts/setup-test-tools.sh";

function fail(message) {
  console.error(`swagger-ui.mjs: FAILED: ${message}`);
  process.exit(1);
}

const [base, outArg, userArg] = process.argv.slice(2);
if (!base || !outArg) {
  fail("usage: node swagger-ui.mjs <gateway base URL, e.g. http://127.0.0.1:8080> <output dir> [user id]");
}
const origin = new URL(base).origin;
const outDir = resolve(outArg);
const userId = Number(userArg ?? 4242);
if (!Number.isSafeInteger(userId) || userId <= 0) {
  fail(`user id must be a positive integer, got ${userArg}`);
}
const token = process.env.SWAGGER_BEARER_TOKEN || "";
const shotName = token ? "swagger-ui-authorized" : "swagger-ui";
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!existsSync(chromiumPath)) {
  fail(`no Chromium at ${chromiumPath} (${SETUP}: it installs Debian's chromium)`);
}

let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch (err) {
  fail(`cannot load playwright-core (${err.message}); ${SETUP}: it runs npm ci in tools/browser`);
}

// A hung step must not hang the test: give up after two minutes in all.
const watchdog = setTimeout(() => fail("gave up after 120 s"), 120_000);

const order = { user_id: userId, items: [{ product_id: 7, quantity: 3, price: 1999 }] };
mkdirSync(outDir, { recursive: true });
const userDataDir = mkdtempSync(join(tmpdir(), "swagger-ui-chromium-"));
let context;
let page;
const foreignRequests = [];
const pageErrors = [];

async function step(what, action) {
  try {
    return await action();
  } catch (err) {
    throw new Error(`${what}: ${err.message.split("\n")[0]}`);
  }
}

try {
  context = await step("launching Chromium", () =>
    chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1280, height: 900 },
    }),
  );
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(30_000);
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith("data:") && !url.startsWith("blob:") && new URL(url).origin !== origin) {
      foreignRequests.push(url);
    }
  });
  page.on("pageerror", (err) => pageErrors.push(err.message));

  const indexUrl = `${origin}/swagger/index.html`;
  const response = await step(`opening ${indexUrl}`, () => page.goto(indexUrl));
  if (!response || response.status() !== 200) {
    throw new Error(`${indexUrl} answered ${response ? response.status() : "nothing"}`);
  }

  // The operations, once Swagger UI has rendered doc.json.
  await step("waiting for the operations to render", () =>
    page.locator(".opblock").first().waitFor(),
  );
  const operations = await page.$$eval(".opblock", (blocks) =>
    blocks.map((block) => {
      const method = block.querySelector(".opblock-summary-method")?.textContent?.trim();
      const path = block.querySelector(".opblock-summary-path")?.getAttribute("data-path");
      return `${method} ${path}`;
    }),
  );
  for (const wanted of ["POST /orders", "GET /orders/{order_id}"]) {
    if (!operations.includes(wanted)) {
      throw new Error(`the page does not list ${wanted}; it lists: ${operations.join(", ")}`);
    }
  }
  console.log(`operations listed: ${operations.join(", ")}`);

  if (token) {
    // The bearer scheme of the OpenAPI document: Authorize, the token, Authorize, Close.
    await step('clicking "Authorize"', () => page.locator("button.authorize").first().click());
    const dialog = page.locator(".dialog-ux .modal-ux");
    await step("typing the bearer token", () => dialog.locator("input").first().fill(token));
    await step('clicking "Authorize" in the dialog', () =>
      dialog.locator(".auth-btn-wrapper button.authorize").click(),
    );
    await step("closing the dialog", () => dialog.locator(".auth-btn-wrapper button.btn-done").click());
    console.log("authorized with the bearer token");
  }

  // POST /orders: expand, Try it out, the body, Execute.
  const post = page
    .locator(".opblock.opblock-post")
    .filter({ has: page.locator('.opblock-summary-path[data-path="/orders"]') });
  await step("expanding POST /orders", () => post.locator(".opblock-summary-control").click());
  await step('clicking "Try it out"', () =>
    post.getByRole("button", { name: "Try it out" }).click(),
  );
  const body = JSON.stringify(order, null, 2);
  await step("typing the request body", () => post.locator("textarea.body-param__text").fill(body));
  await step("clicking Execute", () => post.getByRole("button", { name: "Execute" }).click());

  // The live response: status 200 and {"order_id": N}.
  const live = post.locator(".live-responses-table .response").first();
  await step("waiting for the response", () => live.waitFor());
  const status = (await live.locator(".response-col_status").innerText()).trim();
  const responseText = (
    await step("reading the response body", () =>
      live.locator(".response-col_description .highlight-code pre").first().innerText(),
    )
  ).trim();
  if (status !== "200") {
    throw new Error(`Execute got status ${status}, body: ${responseText}`);
  }
  let answer;
  try {
    answer = JSON.parse(responseText);
  } catch (err) {
    throw new Error(`the response body on the page is not JSON: ${responseText}`);
  }
  if (!Number.isSafeInteger(answer.order_id) || answer.order_id <= 0) {
    throw new Error(`the response body has no positive order_id: ${responseText}`);
  }
  const requestUrl = (await post.locator(".request-url pre").first().innerText()).trim();
  if (requestUrl !== `${origin}/orders`) {
    throw new Error(`"Try it out" called ${requestUrl}, not ${origin}/orders`);
  }
  console.log(`Execute: ${status} ${responseText.replace(/\s+/g, " ")} from ${requestUrl}`);
  if (token) {
    const curl = await post.locator(".curl-command").first().innerText();
    if (!curl.includes("Authorization: Bearer ")) {
      throw new Error(`the executed request carried no bearer token: ${curl}`);
    }
  }

  if (foreignRequests.length > 0) {
    throw new Error(`the page requested URLs outside the gateway: ${foreignRequests.join(", ")}`);
  }
  if (pageErrors.length > 0) {
    throw new Error(`the page threw: ${pageErrors.join("; ")}`);
  }

  await live.scrollIntoViewIfNeeded();
  const screenshot = join(outDir, `${shotName}.png`);
  await step("taking the screenshot", () => page.screenshot({ path: screenshot, fullPage: true }));
  console.log(`screenshot: ${screenshot}`);
  console.log(
    `RESULT ${JSON.stringify({ order_id: answer.order_id, user_id: userId, items: order.items, status: 200, screenshot })}`,
  );
} catch (err) {
  if (page) {
    const failure = join(outDir, `${shotName}-failure.png`);
    try {
      await page.screenshot({ path: failure, fullPage: true });
      console.error(`screenshot of the failure: ${failure}`);
    } catch {
      // The page may be gone; the message below is what matters.
    }
  }
  if (pageErrors.length > 0) console.error(`page errors: ${pageErrors.join("; ")}`);
  await context?.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
  fail(err.message);
}
await context.close();
rmSync(userDataDir, { recursive: true, force: true });
clearTimeout(watchdog);
