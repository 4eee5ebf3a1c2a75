// A real MCP client against keygate: the official TypeScript MCP SDK
// discovers the protected resource and authorization server metadata,
// registers (dynamic registration, or a Client ID Metadata Document when
// KEYGATE_CLIENT_METADATA_URL is set), and runs the authorization code flow
// with PKCE. Where a person would use a browser, this script fills in
// keygate's login and consent forms over HTTP. It then calls the demo MCP
// server's tools and prints what it saw as one JSON object for the Go test
// (client_test.go, and cmd/keygate/demo_mcp_test.go against `keygate demo`)
// to check.
//
// Usage: node client.mjs <MCP endpoint URL>
// Environment: KEYGATE_EMAIL, KEYGATE_PASSWORD, optional
// KEYGATE_ORGANIZATION (organization id to approve for),
// KEYGATE_CLIENT_METADATA_URL.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const REDIRECT_URL = 'http://127.0.0.1:33418/callback';
const STATE = 'e2e-state-' + Math.random().toString(36).slice(2);

class Provider {
  constructor(clientMetadataUrl) {
    if (clientMetadataUrl) this.clientMetadataUrl = clientMetadataUrl;
  }
  get redirectUrl() { return REDIRECT_URL; }
  get clientMetadata() {
    return {
      client_name: 'keygate e2e (TypeScript SDK)',
      redirect_uris: [REDIRECT_URL],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() { return STATE; }
  clientInformation() { return this.client; }
  saveClientInformation(info) { this.client = info; }
  tokens() { return this.savedTokens; }
  saveTokens(tokens) { this.savedTokens = tokens; }
  redirectToAuthorization(url) { this.authorizationUrl = url; }
  saveCodeVerifier(verifier) { this.verifier = verifier; }
  codeVerifier() { return this.verifier; }
}

// browser is the little a user agent does here: cookies, no automatic
// redirects, form posts.
const cookies = new Map();

async function request(url, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (cookies.size) headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  const res = await fetch(url, { ...options, headers, redirect: 'manual' });
  for (const c of res.headers.getSetCookie()) {
    const [pair, ...attrs] = c.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    if (value === '' || attrs.some((a) => /max-age=-1|max-age=0\b/i.test(a.trim()))) cookies.delete(name);
    else cookies.set(name, value);
  }
  return { status: res.status, location: res.headers.get('location'), body: await res.text() };
}

function hiddenFields(html) {
  const fields = {};
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    if (!(m[1] in fields)) fields[m[1]] = unescape(m[2]);
  }
  return fields;
}

function unescape(s) {
  return s.replace(/&amp;/g, '&').replace(/&#43;/g, '+').replace(/&#34;/g, '"').replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"');
}

function post(url, fields) {
  return request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });
}

function expect(ok, message) {
  if (!ok) throw new Error(message);
}

// approve logs in on keygate's page and approves on its consent page, as
// the user would, and returns the redirect back to the client.
async function approve(authorizationUrl) {
  let page = await request(authorizationUrl);
  expect(page.status === 200 && page.body.includes('Log in to keygate'), `authorization page: HTTP ${page.status}`);
  page = await post(new URL('login', authorizationUrl), {
    ...hiddenFields(page.body),
    email: process.env.KEYGATE_EMAIL,
    password: process.env.KEYGATE_PASSWORD,
  });
  expect(page.status === 303, `login: HTTP ${page.status}`);
  const consentUrl = new URL(page.location, new URL('login', authorizationUrl));
  page = await request(consentUrl);
  expect(page.status === 200 && page.body.includes('value="approve"'), `consent page: HTTP ${page.status}`);
  const organization = process.env.KEYGATE_ORGANIZATION ||
    page.body.match(/name="organization" value="([^"]+)"/)[1];
  page = await post(new URL('authorize', consentUrl), {
    ...hiddenFields(page.body),
    organization,
    decision: 'approve',
  });
  expect(page.status === 303, `consent: HTTP ${page.status}`);
  return new URL(page.location);
}

async function connect(url, provider) {
  const client = new Client({ name: 'keygate-e2e', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider }));
  return client;
}

function structured(result) {
  expect(!result.isError, `tool error: ${JSON.stringify(result.content)}`);
  return result.structuredContent;
}

async function main() {
  const mcpUrl = new URL(process.argv[2]);
  const provider = new Provider(process.env.KEYGATE_CLIENT_METADATA_URL);

  // First contact: 401, discovery, registration, and the authorization URL.
  const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
  try {
    await new Client({ name: 'keygate-e2e', version: '1.0.0' }).connect(transport);
    throw new Error('connected without authorization');
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  const authorizationUrl = provider.authorizationUrl;
  expect(authorizationUrl, 'the SDK never asked for authorization');

  // RFC 9207: the redirect must name the issuer the client discovered.
  const metadata = await (await fetch(new URL('/.well-known/oauth-authorization-server', authorizationUrl))).json();
  const back = await approve(authorizationUrl);
  expect(back.searchParams.get('state') === STATE, 'state does not round-trip');
  expect(metadata.authorization_response_iss_parameter_supported === true, 'iss support not advertised');
  expect(back.searchParams.get('iss') === metadata.issuer, `iss ${back.searchParams.get('iss')} is not ${metadata.issuer}`);
  await transport.finishAuth(back.searchParams.get('code'));

  const client = await connect(mcpUrl, provider);
  const tools = (await client.listTools()).tools.map((t) => t.name).sort();

  // Every product the organization may see, page by page.
  const states = new Set();
  let total = 0;
  for (let page = 1; ; page++) {
    const result = structured(await client.callTool({ name: 'search_products', arguments: { page, per_page: 100 } }));
    total = result.total;
    for (const p of result.products) states.add(p.state);
    if (page >= result.total_pages) break;
  }
  const refused = await client.callTool({ name: 'search_products', arguments: { states: ['New York'] } });
  await client.close();

  console.log(JSON.stringify({
    client_id: provider.client.client_id,
    authorization_url: authorizationUrl.toString(),
    resource: authorizationUrl.searchParams.get('resource'),
    iss: back.searchParams.get('iss'),
    token_prefix: provider.savedTokens.access_token.slice(0, 7),
    has_refresh_token: Boolean(provider.savedTokens.refresh_token),
    tools,
    states: [...states].sort(),
    total,
    refusal: { is_error: Boolean(refused.isError), text: refused.content.map((c) => c.text).join('\n') },
  }));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
