// tenantgate console: a view of the public REST API (/v1) with the
// signed-in user's token. Every ID and name shown is chosen by some user,
// so text is only ever set with textContent, and URLs are built with
// encodeURIComponent.
'use strict';

(() => {
  const PERMISSIONS = ['read', 'update', 'create', 'delete', 'manage_members', 'manage_owners'];
  // The permission that marks each role, strongest first: the lists of
  // companies by permission tell the effective role without another API.
  const ROLES = [
    { role: 'owner', permission: 'manage_owners' },
    { role: 'admin', permission: 'manage_members' },
    { role: 'editor', permission: 'update' },
  ];
  const ROLE_RANK = { viewer: 1, editor: 2, admin: 3, owner: 4 };
  const PAGE_LIMIT = 500;
  const TREE_BATCH = 200;
  const AUDIT_PAGE = 50;
  const TOKEN_KEY = 'tenantgate.console.token';
  const CONSISTENCY_KEY = 'tenantgate.console.consistency';
  const PKCE_KEY = 'tenantgate.console.pkce';

  const $ = (id) => document.getElementById(id);

  const state = {
    config: { demo_users: [], oidc: null },
    token: null,
    // The consistency token of the latest write: reads send it so that
    // they show the write at once.
    consistency: null,
    // companies is the caller's visible tree, loaded once per sign-in and
    // again after a write.
    companies: null,
    treeLimit: TREE_BATCH,
    // gen tells a view's late answers from the current view's.
    gen: 0,
    auditCursor: null,
  };

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail || `HTTP ${status}`);
      this.status = status;
      this.detail = detail || '';
    }
  }

  // el builds an element; attribute values and children become text, never
  // markup.
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'text') node.textContent = value;
      else if (name === 'class') node.className = value;
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  const companyRoute = (id) => `#/company/${encodeURIComponent(id)}`;
  const companyPath = (id) => `/v1/companies/${encodeURIComponent(id)}`;

  // ---- notices ----

  function notify(kind, text) {
    const n = $('notice');
    n.className = kind;
    n.textContent = text;
  }

  function clearNotice() {
    notify('', '');
  }

  // plainRefusal says in plain words why the API refused.
  function plainRefusal(err) {
    const d = err.detail.toLowerCase();
    switch (err.status) {
      case 400:
        return `The gateway did not accept this input: ${err.detail.replace(/^.*?invalid argument: /i, '') || 'it is not valid'}.`;
      case 403:
        if (d.includes('own membership')) {
          return 'Nobody can change their own membership, not even an admin: ask another admin or an owner.';
        }
        // The member routes name both permissions without telling which
        // one is missing: manage_members is the one everybody needs.
        if (d.includes('manage_members')) {
          return d.includes('manage_owners')
            ? 'You need to be an admin or owner of this company (manage_members) to change its members, and an owner (manage_owners) to grant, change or remove the owner role.'
            : 'You need to be an admin or owner of this company (manage_members) to change its members.';
        }
        if (d.includes('manage_owners')) {
          return 'Only an owner can do this: granting, changing or removing the owner role, and moving a company, need manage_owners.';
        }
        if (d.includes('needs create')) {
          return 'You need create on the parent company (admin or owner there) to put a company below it.';
        }
        return 'You are not allowed to do this on this company.';
      case 404:
        return 'That does not exist (or is not visible to you).';
      case 409:
        if (d.includes('at least one active owner') || d.includes('active owner of its own')) {
          return 'A root company must keep at least one active owner: make someone else owner first.';
        }
        if (d.includes('quota')) {
          return `A limit of this gateway was reached: ${err.detail.replace(/^.*?quota: /i, '')}.`;
        }
        if (d.includes('descendant')) {
          return 'A company cannot move below itself or below one of the companies under it.';
        }
        return `This conflicts with the current state: ${err.detail.replace(/^.*?conflict: /i, '')}.`;
      case 429:
        return 'Too many requests: wait a moment, then try again.';
      case 503:
        return 'The gateway cannot answer right now: try again in a moment.';
      case 0:
        return 'The gateway could not be reached: check the connection and try again.';
      default:
        return `Something went wrong (HTTP ${err.status}); try again later.`;
    }
  }

  // fail shows what went wrong; a refused token ends the session.
  function fail(err) {
    if (!(err instanceof ApiError)) {
      notify('error', `Something went wrong: ${err.message}`);
      return;
    }
    if (err.status === 401) {
      signOut();
      notify('error', 'Your sign-in has expired or was not accepted: please sign in again.');
      return;
    }
    notify('error', plainRefusal(err));
  }

  // ---- API ----

  function remember(consistency) {
    state.consistency = consistency;
    if (consistency) sessionStorage.setItem(CONSISTENCY_KEY, consistency);
    else sessionStorage.removeItem(CONSISTENCY_KEY);
  }

  async function api(method, path, { body, query, fresh = true } = {}) {
    const headers = { Accept: 'application/json', Authorization: `Bearer ${state.token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const sent = method === 'GET' && fresh ? state.consistency : null;
    if (sent) headers['Consistency-Token'] = sent;
    let url = path;
    if (query) url += `?${new URLSearchParams(query)}`;
    let resp;
    try {
      resp = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, '');
    }
    let data = null;
    const type = resp.headers.get('Content-Type') || '';
    if (type.includes('json')) {
      try {
        data = await resp.json();
      } catch {
        data = null;
      }
    }
    if (!resp.ok) {
      const detail = data && typeof data.detail === 'string' ? data.detail : '';
      // A token the gateway no longer knows (its database was restored or
      // replaced) would refuse every read: drop it and read the present.
      if (sent && resp.status === 400 && detail.includes('consistency token')) {
        remember(null);
        return api(method, path, { body, query, fresh });
      }
      throw new ApiError(resp.status, detail);
    }
    if (method !== 'GET') {
      const token = resp.headers.get('Consistency-Token') || (data && data.consistency_token);
      if (token) remember(token);
      state.companies = null;
    }
    return data;
  }

  // listAll follows next_cursor to the end of one list.
  async function listAll(permission) {
    const all = [];
    let cursor = '';
    do {
      const query = { permission, limit: String(PAGE_LIMIT) };
      if (cursor) query.cursor = cursor;
      const page = await api('GET', '/v1/companies', { query });
      all.push(...page.companies);
      cursor = page.next_cursor || '';
    } while (cursor);
    return all;
  }

  // ---- session ----

  function claimsOf(token) {
    const part = token.split('.')[1];
    if (!part) return null;
    try {
      const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const claims = JSON.parse(new TextDecoder().decode(bytes));
      return claims && typeof claims === 'object' ? claims : null;
    } catch {
      return null;
    }
  }

  function signIn(token) {
    const claims = claimsOf(token);
    if (!claims || typeof claims.sub !== 'string') {
      notify('error', 'That is not a token the console can read: paste a JWT (three parts separated by dots).');
      return false;
    }
    if (typeof claims.exp === 'number' && claims.exp * 1000 < Date.now()) {
      notify('error', 'That token has expired: get a new one and sign in again.');
      return false;
    }
    state.token = token;
    state.companies = null;
    remember(null);
    sessionStorage.setItem(TOKEN_KEY, token);
    $('whoami').textContent = claims.sub;
    $('session').hidden = false;
    return true;
  }

  function signOut() {
    // Answers still on their way belong to the session that ended.
    state.gen++;
    state.token = null;
    state.companies = null;
    remember(null);
    sessionStorage.removeItem(TOKEN_KEY);
    $('whoami').textContent = '';
    $('session').hidden = true;
    $('token').value = '';
    showView('signin');
  }

  function enter() {
    if (!location.hash || location.hash === '#/') location.hash = '#/companies';
    else route();
  }

  async function demoSignIn(user) {
    try {
      const resp = await fetch('demo/token', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ user }),
        credentials: 'omit',
      });
      const data = await resp.json();
      if (!resp.ok) throw new ApiError(resp.status, data.detail);
      if (signIn(data.token)) {
        clearNotice();
        enter();
      }
    } catch (err) {
      notify('error', err instanceof ApiError ? plainRefusal(err) : 'The demo sign-in failed.');
    }
  }

  // ---- OIDC: authorization code with PKCE (S256) ----

  function base64url(bytes) {
    let s = '';
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  const randomString = () => base64url(crypto.getRandomValues(new Uint8Array(32)));
  const redirectURI = () => `${location.origin}/console/`;

  async function oidcStart() {
    const oidc = state.config.oidc;
    if (!crypto.subtle) {
      notify('error', 'Signing in with the identity provider needs HTTPS (or localhost).');
      return;
    }
    const verifier = randomString();
    const stateParam = randomString();
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
    sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state: stateParam }));
    const url = new URL(oidc.authorization_endpoint);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', oidc.client_id);
    url.searchParams.set('redirect_uri', redirectURI());
    url.searchParams.set('scope', oidc.scope);
    url.searchParams.set('state', stateParam);
    url.searchParams.set('code_challenge', base64url(new Uint8Array(digest)));
    url.searchParams.set('code_challenge_method', 'S256');
    location.assign(url.toString());
  }

  // oidcFinish completes a sign-in the identity provider redirected back
  // from; it returns whether the URL was such a redirect.
  async function oidcFinish() {
    const params = new URLSearchParams(location.search);
    if (!params.has('code') && !params.has('error')) return false;
    const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || 'null');
    sessionStorage.removeItem(PKCE_KEY);
    // The query holds a one-time code: leave it out of the history.
    history.replaceState(null, '', `${location.pathname}#/companies`);
    const oidc = state.config.oidc;
    if (params.has('error')) {
      notify('error', `The identity provider refused the sign-in: ${params.get('error_description') || params.get('error')}`);
      return true;
    }
    if (!oidc || !saved || saved.state !== params.get('state')) {
      notify('error', 'The sign-in could not be completed (it was not started here, or started twice): please try again.');
      return true;
    }
    try {
      const resp = await fetch(oidc.token_endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: params.get('code'),
          redirect_uri: redirectURI(),
          client_id: oidc.client_id,
          code_verifier: saved.verifier,
        }),
        credentials: 'omit',
      });
      const data = await resp.json();
      const token = data.access_token || data.id_token;
      if (!resp.ok || !token) throw new Error(data.error_description || data.error || `HTTP ${resp.status}`);
      if (signIn(token)) clearNotice();
    } catch (err) {
      notify('error', `The identity provider did not give a token: ${err.message}`);
    }
    return true;
  }

  // ---- views ----

  const VIEWS = ['signin', 'companies-view', 'company-view', 'audit-view'];
  const VIEW_HEADINGS = {
    signin: 'signin-title', 'companies-view': 'companies-title', 'company-view': 'company-name', 'audit-view': 'audit-title',
  };

  function showView(id) {
    const changed = $(id).hidden;
    for (const v of VIEWS) $(v).hidden = v !== id;
    // Keyboard and screen reader users start reading a new view; a view
    // shown again after a change keeps the focus where the change was made.
    if (changed) $(VIEW_HEADINGS[id]).focus({ preventScroll: true });
  }

  function parseRoute() {
    const parts = location.hash.replace(/^#/, '').split('/');
    if (parts[1] === 'company' && parts[2]) {
      try {
        return { view: parts[3] === 'audit' ? 'audit' : 'company', id: decodeURIComponent(parts[2]) };
      } catch {
        return { view: 'companies' };
      }
    }
    return { view: 'companies' };
  }

  function route() {
    const gen = ++state.gen;
    if (!state.token) {
      showView('signin');
      return;
    }
    const r = parseRoute();
    const current = () => gen === state.gen;
    if (r.view === 'company') showCompany(r.id, current).catch(fail);
    else if (r.view === 'audit') showAudit(r.id, current).catch(fail);
    else showCompanies(current).catch(fail);
  }

  // ---- My companies ----

  // loadCompanies reads the four lists and derives each visible company's
  // effective role and where it starts.
  async function loadCompanies() {
    if (state.companies) return state.companies;
    const [read, ...strong] = await Promise.all(['read', ...ROLES.map((r) => r.permission)].map(listAll));
    const byID = new Map(read.map((c) => [c.id, { ...c, children: [] }]));
    const held = ROLES.map((r, i) => ({ role: r.role, ids: new Set(strong[i].map((c) => c.id)) }));
    for (const c of byID.values()) {
      const r = held.find((h) => h.ids.has(c.id));
      c.role = r ? r.role : 'viewer';
    }
    const roots = [];
    for (const c of byID.values()) {
      const parent = c.parent_id !== null && c.parent_id !== undefined ? byID.get(c.parent_id) : undefined;
      c.parent = parent || null;
      if (parent) parent.children.push(c);
      else roots.push(c);
    }
    const direct = (c) => !c.parent || ROLE_RANK[c.role] > ROLE_RANK[c.parent.role];
    for (const c of byID.values()) {
      let from = c;
      // A tree is at most 40 deep; the bound guards against a looping answer.
      for (let hops = 0; !direct(from) && hops < 64; hops++) from = from.parent;
      c.origin = from === c ? 'direct' : `inherited from ${from.id}`;
    }
    const byName = (a, b) => a.name.localeCompare(b.name) || (a.id < b.id ? -1 : 1);
    roots.sort(byName);
    for (const c of byID.values()) c.children.sort(byName);
    state.companies = { byID, roots };
    return state.companies;
  }

  // shownSet is every company matching the search, with its ancestors;
  // null shows all.
  function shownSet(companies, query) {
    const q = query.trim().toLowerCase();
    if (!q) return null;
    const shown = new Set();
    for (const c of companies.byID.values()) {
      if (!c.id.toLowerCase().includes(q) && !c.name.toLowerCase().includes(q)) continue;
      for (let a = c, hops = 0; a && !shown.has(a.id) && hops < 64; a = a.parent, hops++) shown.add(a.id);
    }
    return shown;
  }

  function renderTree() {
    const companies = state.companies;
    const shown = shownSet(companies, $('company-search').value);
    const tree = $('companies');
    let budget = state.treeLimit;
    let more = false;
    // Depth first, so that every rendered company's ancestors are rendered.
    const render = (list, into) => {
      for (const c of list) {
        if (shown && !shown.has(c.id)) continue;
        if (budget === 0) {
          more = true;
          return;
        }
        budget--;
        const item = el('li', { role: 'treeitem', 'data-company': c.id },
          el('div', { class: 'row' },
            el('a', { class: 'name', href: companyRoute(c.id), text: c.name }),
            el('span', { class: 'cid', text: c.id }),
            el('span', { class: 'role', text: c.role }),
            el('span', { class: 'origin', text: c.origin })));
        into.append(item);
        const children = c.children.filter((k) => !shown || shown.has(k.id));
        if (children.length > 0) {
          item.setAttribute('aria-expanded', 'true');
          const group = el('ul', { role: 'group' });
          item.append(group);
          render(children, group);
        }
      }
    };
    tree.replaceChildren();
    render(companies.roots, tree);
    $('companies-more').hidden = !more;
    const total = shown ? shown.size : companies.byID.size;
    const status = total === 0
      ? (shown ? 'No company matches.' : 'You hold no role on any company yet.')
      : `${total} ${total === 1 ? 'company' : 'companies'}${shown ? ' (matches and their parents)' : ''}.`;
    $('companies-status').textContent = status;
  }

  async function showCompanies(current) {
    showView('companies-view');
    $('companies-status').textContent = 'Loading…';
    $('companies').replaceChildren();
    $('companies-more').hidden = true;
    await loadCompanies();
    if (!current()) return;
    state.treeLimit = TREE_BATCH;
    renderTree();
  }

  // Arrow keys move between the tree's links, as in a tree widget.
  function treeKeys(event) {
    const keys = ['ArrowDown', 'ArrowUp', 'Home', 'End'];
    if (!keys.includes(event.key)) return;
    const links = [...$('companies').querySelectorAll('a.name')];
    const at = links.indexOf(document.activeElement);
    if (at < 0 || links.length === 0) return;
    event.preventDefault();
    const next = { ArrowDown: Math.min(at + 1, links.length - 1), ArrowUp: Math.max(at - 1, 0), Home: 0, End: links.length - 1 }[event.key];
    links[next].focus();
  }

  // ---- company view ----

  function membershipLine(m) {
    return `${m.role} on ${m.company}${m.inherited ? ' (inherited)' : ''}: ${m.grants ? 'grants it' : 'does not grant it'}`;
  }

  function permissionRow(perm, allowed, explanation) {
    const id = `why-${perm}`;
    const box = el('div', { class: 'explanation', id, hidden: true });
    if (explanation) {
      box.append(explanation.text);
      if (explanation.memberships.length > 0) {
        box.append(el('p', { text: 'Your memberships here and above:' }),
          el('ul', {}, ...explanation.memberships.map((m) => el('li', { text: membershipLine(m) }))));
      }
    } else {
      box.append('This gateway has no explainer: no explanation is available.');
    }
    const why = el('button', {
      type: 'button', class: 'why', 'aria-expanded': 'false', 'aria-controls': id, 'aria-label': `Why ${allowed ? '' : 'not '}${perm}?`, text: 'Why?',
    });
    why.addEventListener('click', () => {
      box.hidden = !box.hidden;
      why.setAttribute('aria-expanded', String(!box.hidden));
    });
    return el('tr', { 'data-permission': perm },
      el('th', { scope: 'row', text: perm }),
      el('td', { class: `answer ${allowed ? 'yes' : 'no'}`, text: allowed ? 'yes' : 'no' }),
      el('td', {}, why, box));
  }

  async function permissionsOf(id) {
    try {
      return await api('GET', `${companyPath(id)}/permissions`, { query: { explain: 'true' } });
    } catch (err) {
      // Without an explainer the matrix is still worth showing.
      if (err instanceof ApiError && err.status === 501) return api('GET', `${companyPath(id)}/permissions`);
      throw err;
    }
  }

  function viaText(via) {
    if (via.length === 0) return 'no membership explains it yet';
    return via.map((v) => `${v.role} on ${v.company_id}${v.inherited ? ' (inherited)' : ''}`).join('; ');
  }

  function memberRow(companyID, m) {
    const remove = el('button', { type: 'button', class: 'remove', 'aria-label': `Remove ${m.user_id}`, text: 'Remove' });
    remove.addEventListener('click', () => {
      write(`Removed ${m.user_id}.`, () => api('DELETE', `${companyPath(companyID)}/members/${encodeURIComponent(m.user_id)}`));
    });
    return el('tr', { 'data-user': m.user_id },
      el('td', { text: m.user_id }),
      el('td', { class: 'role', text: m.role }),
      el('td', { class: 'status', text: m.status }),
      el('td', {}, remove));
  }

  async function showMembers(id, allowed, current) {
    const note = $('members-note');
    const box = $('members-box');
    if (!allowed) {
      note.textContent = 'Only admins and owners of this company (manage_members) can see its members.';
      note.hidden = false;
      box.hidden = true;
      return;
    }
    const [direct, effective] = await Promise.all([
      api('GET', `${companyPath(id)}/members`),
      api('GET', `${companyPath(id)}/members`, { query: { effective: 'true' } }),
    ]);
    if (!current()) return;
    $('members').tBodies[0].replaceChildren(...direct.members.map((m) => memberRow(id, m)));
    $('effective-members').tBodies[0].replaceChildren(...effective.members.map((m) => el('tr', { 'data-user': m.user_id },
      el('td', { text: m.user_id }),
      el('td', { class: 'role', text: m.role || 'none' }),
      el('td', { class: 'via', text: viaText(m.via) }))));
    note.hidden = true;
    box.hidden = false;
  }

  async function showCompany(id, current) {
    const view = $('company-view');
    view.setAttribute('data-company', id);
    $('company-name').textContent = id;
    $('company-id-text').textContent = id;
    $('audit-link').setAttribute('href', `${companyRoute(id)}/audit`);
    $('permissions').tBodies[0].replaceChildren();
    $('members-note').hidden = true;
    $('members-box').hidden = true;
    showView('company-view');
    const [answer, companies] = await Promise.all([permissionsOf(id), loadCompanies()]);
    if (!current()) return;
    const known = companies.byID.get(id);
    if (known) $('company-name').textContent = known.name;
    $('move-parent').value = known && known.parent_id ? known.parent_id : '';
    const explanations = answer.explanations || {};
    $('permissions').tBodies[0].replaceChildren(
      ...PERMISSIONS.map((p) => permissionRow(p, answer.permissions[p], explanations[p])));
    await showMembers(id, answer.permissions.manage_members, current);
  }

  // write runs a change, says it worked, and shows the company again with
  // reads at least as fresh as the change.
  async function write(success, change) {
    try {
      const result = await change();
      notify('ok', typeof success === 'function' ? success(result) : success);
      route();
    } catch (err) {
      fail(err);
    }
  }

  function currentCompany() {
    return $('company-view').getAttribute('data-company');
  }

  function onMemberSubmit(event) {
    event.preventDefault();
    const id = currentCompany();
    const user = $('member-user').value.trim();
    const role = $('member-role').value;
    if (!user) {
      notify('error', 'Enter the user ID of the member.');
      return;
    }
    write((m) => (m.status === 'pending'
      ? `${user} is invited as ${role}; the role grants nothing until they accept.`
      : `${user} is now ${m.role} of ${id}.`),
    () => api('PUT', `${companyPath(id)}/members/${encodeURIComponent(user)}`, { body: { role } }));
  }

  function onCompanySubmit(event) {
    event.preventDefault();
    const body = { name: $('company-name-input').value.trim(), parent_id: currentCompany() };
    const newID = $('company-id').value.trim();
    if (newID) body.id = newID;
    if (!body.name) {
      notify('error', 'Enter a name for the new company.');
      return;
    }
    write((c) => `Created ${c.name} (${c.id}).`, async () => {
      const created = await api('POST', '/v1/companies', { body });
      $('company-id').value = '';
      $('company-name-input').value = '';
      return created;
    });
  }

  function onMoveSubmit(event) {
    event.preventDefault();
    const parent = $('move-parent').value.trim();
    write(parent ? `Moved below ${parent}.` : 'It is now a root company.',
      () => api('PATCH', companyPath(currentCompany()), { body: { parent_id: parent || null } }));
  }

  // ---- audit ----

  function auditRow(e) {
    const at = new Date(e.at);
    return el('tr', { class: 'entry' },
      el('td', {}, el('time', { datetime: e.at, text: Number.isNaN(at.getTime()) ? e.at : at.toLocaleString() })),
      el('td', { text: e.actor }),
      el('td', { text: e.action }),
      el('td', { text: e.target || '' }),
      el('td', { text: e.outcome }),
      el('td', { text: e.reason }));
  }

  async function loadAudit(id, current) {
    const query = { limit: String(AUDIT_PAGE) };
    if (state.auditCursor) query.cursor = state.auditCursor;
    // The audit log is read from Postgres, always up to date.
    const page = await api('GET', `${companyPath(id)}/audit`, { query, fresh: false });
    if (!current()) return;
    const rows = $('audit').tBodies[0];
    rows.append(...page.entries.map(auditRow));
    $('audit-status').textContent = rows.rows.length === 0 ? 'No decision about this company is recorded yet.' : '';
    state.auditCursor = page.next_cursor || null;
    $('audit-more').hidden = !state.auditCursor;
  }

  async function showAudit(id, current) {
    $('audit-view').setAttribute('data-company', id);
    $('audit-title').textContent = `Audit log of ${id}`;
    $('audit-back').setAttribute('href', companyRoute(id));
    $('audit').tBodies[0].replaceChildren();
    $('audit-status').textContent = 'Loading…';
    $('audit-more').hidden = true;
    state.auditCursor = null;
    showView('audit-view');
    await loadAudit(id, current);
  }

  // ---- start ----

  function renderSignInOptions() {
    const users = state.config.demo_users || [];
    $('demo-users').replaceChildren(...users.map((u) => {
      const b = el('button', { type: 'button', 'data-user': u.id },
        el('strong', { text: u.label }), el('br'), el('span', { text: u.id }));
      b.addEventListener('click', () => demoSignIn(u.id));
      return b;
    }));
    $('demo-signin').hidden = users.length === 0;
    $('oidc-box').hidden = !state.config.oidc;
    if (!state.config.oidc) $('oidc-signin').remove();
  }

  async function start() {
    try {
      const resp = await fetch('config.json', { credentials: 'omit', cache: 'no-store' });
      if (resp.ok) state.config = await resp.json();
    } catch {
      notify('error', 'The console could not read its configuration: only pasting a token works.');
    }
    renderSignInOptions();
    $('token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const token = $('token').value.trim().replace(/^Bearer\s+/i, '');
      if (signIn(token)) {
        clearNotice();
        enter();
      }
    });
    if ($('oidc-signin')) $('oidc-signin').addEventListener('click', () => oidcStart().catch(fail));
    $('signout').addEventListener('click', () => {
      signOut();
      notify('ok', 'Signed out.');
    });
    $('companies-more').addEventListener('click', () => {
      state.treeLimit += TREE_BATCH;
      renderTree();
    });
    $('company-search').addEventListener('input', () => {
      if (!state.companies) return;
      state.treeLimit = TREE_BATCH;
      renderTree();
    });
    $('companies').addEventListener('keydown', treeKeys);
    $('member-form').addEventListener('submit', onMemberSubmit);
    $('company-form').addEventListener('submit', onCompanySubmit);
    $('move-form').addEventListener('submit', onMoveSubmit);
    $('audit-more').addEventListener('click', () => {
      const id = $('audit-view').getAttribute('data-company');
      const gen = state.gen;
      loadAudit(id, () => gen === state.gen).catch(fail);
    });
    window.addEventListener('hashchange', () => {
      clearNotice();
      route();
    });

    const finished = await oidcFinish();
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (!state.token && saved) {
      // A reload keeps the session's latest write in view.
      const consistency = sessionStorage.getItem(CONSISTENCY_KEY);
      if (signIn(saved)) remember(consistency);
      else sessionStorage.removeItem(TOKEN_KEY);
    }
    if (state.token || finished) enter();
    else showView('signin');
  }

  start();
})();
