// The live operator map: the events API (/api/events) drawn with Leaflet's SVG renderer.
// Plain modern JavaScript, no build step. Every event is ONE SVG path carrying data-event-id and
// the class ev-point (a Point) or ev-line (a line); outlines (ev-casing), the dashes on city events
// (ev-dash), cluster rings and badges are drawn beside them with classes of their own, so the paths of
// events can be counted.
// Nothing from the data is ever parsed as HTML: text goes in with textContent.
(() => {
  "use strict";

  const settings = JSON.parse(document.getElementById("map-settings").textContent);
  const REFRESH_MS = (settings.refresh_s || 60) * 1000;
  const PAGE_SIZE = 500;
  const MAX_PAGES = 40; // 20 000 events: beyond that the operator should narrow the filters
  const WAZE_ATTRIBUTION = "Crowd data © Waze";
  const SVG_NS = "http://www.w3.org/2000/svg";

  const CATEGORIES = [
    { key: "ACCIDENT", label: "Accident", color: "#d62828" },
    { key: "ROAD_CLOSED", label: "Road closed", color: "#7b2cbf" },
    { key: "CONSTRUCTION", label: "Construction", color: "#92400e" },
    { key: "HAZARD", label: "Hazard", color: "#e9b200" },
    { key: "JAM", label: "Jam report", color: "#f97316" },
    { key: "POLICE", label: "Police", color: "#1d4ed8" },
    { key: "IRREGULARITY", label: "Irregularity", color: "#c2185b" },
    { key: "MISC", label: "Other", color: "#6b7280" },
  ];
  const CATEGORY = Object.fromEntries(CATEGORIES.map((c) => [c.key, c]));
  // Waze jam levels 0 (free flow) to 5 (standstill / blocked)
  const LEVELS = [
    { level: 1, label: "Level 1: light", color: "#f6c945" },
    { level: 2, label: "Level 2: moderate", color: "#f59e0b" },
    { level: 3, label: "Level 3: heavy", color: "#ea580c" },
    { level: 4, label: "Level 4: very heavy", color: "#dc2626" },
    { level: 5, label: "Level 5: standstill", color: "#7f1d1d" },
  ];
  const LEVEL_COLOR = ["#9ca3af", ...LEVELS.map((l) => l.color)];
  const CITY = {
    ROAD_CLOSED: { color: "#ef4444", dash: "9 6", label: "City closure" },
    CONSTRUCTION: { color: "#fb923c", dash: "9 6", label: "City construction" },
    other: { color: "#f472b6", dash: "9 6", label: "Other city event" },
  };
  const CITY_CASING = "#111827"; // dark under the dashes: a barrier look no jam has
  const HELD_BACK_DASH = "1 8";
  const HELD_BACK_CASING = "#facc15";

  // ------------------------------------------------------------------ the map

  const map = L.map("map", { zoomControl: true, attributionControl: true, minZoom: 2, zoomSnap: 0.5, worldCopyJump: true });
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  map.setView([20, 0], 2);
  const PANES = [["evCasings", 405], ["evLines", 410], ["evDashes", 412], ["evRings", 415], ["evPoints", 420]];
  for (const [name, z] of PANES) {
    map.createPane(name).style.zIndex = String(z);
  }
  const renderers = {
    evCasings: L.svg({ pane: "evCasings", padding: 0.5 }),
    evLines: L.svg({ pane: "evLines", padding: 0.5 }),
    evDashes: L.svg({ pane: "evDashes", padding: 0.5 }),
    evRings: L.svg({ pane: "evRings", padding: 0.5 }),
    evPoints: L.svg({ pane: "evPoints", padding: 0.5 }),
  };
  // on a narrow map the legend starts folded (its summary stays, one click opens it)
  const legendBox = document.querySelector(".legend");
  function foldLegendIfNarrow() {
    if (legendBox && legendBox.open && map.getSize().x < 760) legendBox.open = false;
  }
  foldLegendIfNarrow();
  const drawn = L.featureGroup().addTo(map); // the events' own paths
  const extras = L.layerGroup().addTo(map); // outlines, dashes, cluster rings and badges

  const notice = document.getElementById("notice");
  const notices = new Map(); // key -> text; shown together, never as a dialog
  function setNotice(key, text) {
    if (text) notices.set(key, text);
    else notices.delete(key);
    notice.textContent = [...notices.values()].join(" · ");
    notice.hidden = notices.size === 0;
  }

  if (settings.tile_url) {
    const tiles = L.tileLayer(settings.tile_url, {
      attribution: settings.tile_attribution || "",
      maxZoom: 19,
      // a tile that fails stays transparent: the plain background shows, not a broken image
      errorTileUrl: "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7",
    });
    let failed = 0;
    tiles.on("tileerror", () => {
      failed += 1;
      if (failed === 1) setNotice("tiles", "Base map unavailable: events are drawn on a plain background.");
    });
    tiles.on("tileload", (event) => {
      if (event.tile && event.tile.src === tiles.options.errorTileUrl) return; // the stand-in of a failed tile
      failed = 0;
      setNotice("tiles", null);
    });
    tiles.addTo(map);
  } else {
    document.getElementById("map").classList.add("no-basemap");
  }

  // ------------------------------------------------------------------ formatting

  const timeFormat = new Intl.DateTimeFormat("en-US", {
    timeZone: settings.timezone || "UTC", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    hour12: false, timeZoneName: "short",
  });
  // a date of another year says so (a 2019 report replayed, a closure planned for next spring)
  const yearFormat = new Intl.DateTimeFormat("en-US", {
    timeZone: settings.timezone || "UTC", year: "numeric", month: "short", day: "numeric", hour: "2-digit",
    minute: "2-digit", hour12: false, timeZoneName: "short",
  });
  const yearOnly = new Intl.DateTimeFormat("en-US", { timeZone: settings.timezone || "UTC", year: "numeric" });
  function when(value) {
    if (!value) return "—";
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    return (yearOnly.format(date) === yearOnly.format(new Date()) ? timeFormat : yearFormat).format(date);
  }
  // the API's sentences carry ISO times (UTC): shown in the city's time like every other time here
  function localTimes(text) {
    return String(text).replace(/\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:\d\d)/g, when);
  }
  // the store's "held back: R", "newer version held back: R", or per target "cifs: held back: R; wzdx: ...",
  // said once and naming the feeds it is held back from (the others carry it)
  function heldBack(text) {
    const parts = String(text).split(/;\s+(?=[a-z0-9]+: (?:newer version )?held back: )/);
    const said = parts.map((part) => {
      const named = /^([a-z0-9]+): (newer version )?held back: ([\s\S]*)$/.exec(part);
      if (named) return `${named[2] ? "newer version " : ""}held back from ${named[1]}: ${named[3]}`;
      const plain = /^(newer version )?held back: ([\s\S]*)$/.exec(part);
      return plain ? `${plain[1] || ""}held back from the feeds: ${plain[2]}` : `held back: ${part}`;
    }).join("; ");
    return said.charAt(0).toUpperCase() + said.slice(1);
  }
  function words(value) {
    return value ? String(value).replace(/_/g, " ").toLowerCase() : "";
  }
  function title(p) {
    const subtype = p.subtype && !/^(NONE|NO_SUBTYPE)$/i.test(p.subtype) ? p.subtype : null;
    let what = subtype ? words(subtype) : words(p.type || p.category);
    if (p.kind === "jam" && !subtype) what = Number.isInteger(p.level) ? `jam, level ${p.level}` : "jam";
    return `${what.charAt(0).toUpperCase()}${what.slice(1)}${p.street ? ` · ${p.street}` : ""}`;
  }
  // exchange.confirm's states: seen in Waze, not seen yet, traffic flowing, not published, not started, ended
  function wazeStatusText(status) {
    if (!status) return "—";
    const known = { "not seen yet": "not seen in Waze yet", "traffic flowing": "Waze shows traffic flowing" };
    return known[status] || status;
  }
  // Waze: -1 means the road is blocked
  function delayText(seconds) {
    return seconds < 0 ? "blocked" : `${Math.max(1, Math.round(seconds / 60))} min delay`;
  }
  function slug(value) {
    return String(value || "unknown").toLowerCase().replace(/[^a-z0-9]+/g, "-");
  }
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  // ------------------------------------------------------------------ filters and legend

  const form = document.getElementById("filters");
  const categoryBox = document.getElementById("categories");
  const categoryCounts = new Map();
  for (const c of CATEGORIES) {
    const id = `cat-${c.key}`;
    const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
    swatch.style.backgroundColor = c.color;
    const count = el("span", { class: "cat-count", text: "" });
    categoryCounts.set(c.key, count);
    categoryBox.append(el("div", { class: "check" },
      el("input", { type: "checkbox", id, name: "category", value: c.key, checked: true }),
      el("label", { for: id }, swatch, c.label, count)));
  }

  function legendLine(stroke, { dash, width = 4, casing } = {}) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 34 12");
    svg.setAttribute("class", "legend-icon");
    svg.setAttribute("aria-hidden", "true");
    if (casing) {
      const under = document.createElementNS(SVG_NS, "path");
      under.setAttribute("d", "M2 6 H32");
      under.setAttribute("stroke", casing.color);
      under.setAttribute("stroke-width", String(casing.width));
      if (casing.dash) under.setAttribute("stroke-dasharray", casing.dash);
      under.setAttribute("fill", "none");
      svg.append(under);
    }
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", "M2 6 H32");
    path.setAttribute("stroke", stroke);
    path.setAttribute("stroke-width", String(width));
    path.setAttribute("fill", "none");
    if (dash) path.setAttribute("stroke-dasharray", dash);
    svg.append(path);
    return svg;
  }
  function legendDot(fill, { stroke = "#fff", dash, ring } = {}) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 34 16");
    svg.setAttribute("class", "legend-icon");
    svg.setAttribute("aria-hidden", "true");
    if (ring) {
      const circle = document.createElementNS(SVG_NS, "circle");
      for (const [k, v] of Object.entries({ cx: 17, cy: 8, r: 7, fill: "none", stroke: "#111827",
        "stroke-width": 1.5, "stroke-dasharray": "3 2" })) circle.setAttribute(k, String(v));
      svg.append(circle);
      return svg;
    }
    const circle = document.createElementNS(SVG_NS, "circle");
    for (const [k, v] of Object.entries({ cx: 17, cy: 8, r: 5.5, fill, stroke, "stroke-width": 2 })) {
      circle.setAttribute(k, String(v));
    }
    if (dash) circle.setAttribute("stroke-dasharray", dash);
    svg.append(circle);
    return svg;
  }
  function buildLegend() {
    const legend = document.getElementById("legend");
    const group = (heading, items) => el("li", { class: "legend-group" }, el("h3", { text: heading }),
      el("ul", {}, ...items.map(([icon, text]) => el("li", {}, icon, el("span", { text })))));
    legend.append(
      group("City events", [
        [legendLine(CITY.ROAD_CLOSED.color, { dash: CITY.ROAD_CLOSED.dash, width: 5,
          casing: { color: CITY_CASING, width: 9 } }), "Closure"],
        [legendLine(CITY.CONSTRUCTION.color, { dash: CITY.CONSTRUCTION.dash, width: 5,
          casing: { color: CITY_CASING, width: 9 } }), "Construction"],
        [legendLine(CITY.ROAD_CLOSED.color, { dash: HELD_BACK_DASH, width: 5,
          casing: { color: HELD_BACK_CASING, width: 9 } }), "Held back from the feeds"],
      ]),
      group("Waze jams", [
        ...LEVELS.map((l) => [legendLine(l.color, { width: 5 }), l.label]),
        [legendLine(CATEGORY.IRREGULARITY.color, { width: 5 }), "Irregularity"],
      ]),
      group("Waze reports", [
        [legendDot(CATEGORY.ACCIDENT.color), "Colour: its category (left)"],
        [legendDot("#ffffff", { ring: true }), "Reports of one incident, with count"],
      ]),
      group("Road match", [
        [legendLine("#6b7280", { width: 4, casing: { color: "#ffffff", width: 8 } }), "Placed on a road"],
        [legendLine("#6b7280", { width: 4, casing: { color: "#4b5563", width: 10, dash: "1 4" } }),
          "Not placed (dotted outline)"],
      ]),
    );
  }
  buildLegend();

  function selectedCategories() {
    return new Set([...form.querySelectorAll('input[name="category"]:checked')].map((i) => i.value));
  }
  function apiQuery() {
    const params = new URLSearchParams();
    const origin = form.elements.origin.value;
    const status = form.elements.status.value;
    const windowS = form.elements.window.value;
    if (origin) params.set("origin", origin);
    if (status) params.set("status", status);
    if (windowS) params.set("since", new Date(Date.now() - Number(windowS) * 1000).toISOString());
    return params;
  }

  // ------------------------------------------------------------------ loading

  // events drawn as tab stops at most (a few streets' worth); more, and none is
  const MAX_TAB_STOPS = 150;
  const state = { features: [], query: "", first: true, loading: null, again: false, selected: null, loadedAt: null,
    signedOut: false, tabbable: true };
  const counter = document.getElementById("counter");
  const updated = document.getElementById("updated");

  async function fetchAll(params) {
    const features = [];
    let cursor = null;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const query = new URLSearchParams(params);
      query.set("limit", String(PAGE_SIZE));
      if (cursor) query.set("cursor", cursor);
      const response = await fetch(`/api/events?${query}`, {
        credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store",
      });
      if (!response.ok) throw Object.assign(new Error(`HTTP ${response.status}`), { status: response.status });
      const body = await response.json();
      features.push(...(body.features || []));
      cursor = body.next_cursor;
      if (!cursor) return { features, complete: true };
    }
    return { features, complete: false };
  }

  // the filters the API applies; a load started under others is dropped, the newer one follows it
  function filterKey() {
    return ["origin", "status", "window"].map((name) => form.elements[name].value).join("|");
  }

  async function load() {
    if (state.loading) {
      state.again = true;
      return state.loading;
    }
    const params = apiQuery();
    const key = filterKey();
    counter.setAttribute("aria-busy", "true");
    state.loading = (async () => {
      try {
        const { features, complete } = await fetchAll(params);
        if (key !== filterKey()) return;
        state.features = features;
        state.query = params.toString();
        state.loadedAt = new Date();
        setNotice("load", complete ? null : `Only the first ${features.length} events are shown: narrow the filters.`);
        setNotice("auth", null);
        if (state.signedOut) showSignedOut(false);  // signed in again (another tab): the header says who again
        state.signedOut = false;
        render();
        if (state.first && drawn.getLayers().length) {
          // the legend covers the map's top right corner: keep the events clear of it
          const right = legendBox && legendBox.open ? legendBox.offsetWidth + 30 : 40;
          map.fitBounds(drawn.getBounds(), { paddingTopLeft: [40, 40], paddingBottomRight: [right, 40], maxZoom: 17 });
          state.first = false;
        }
      } catch (error) {
        if (error.status === 401) {
          // signed out, revoked or expired: what the page showed is no longer this browser's to see
          state.features = [];
          state.signedOut = true;
          render();
          showSignedOut(true);
          setNotice("auth", "Your sign-in has ended: reload the page to sign in again.");
        } else {
          setNotice("load", `Cannot load the events (${error.message}); showing the last ones loaded.`);
        }
      } finally {
        counter.removeAttribute("aria-busy");
        state.loading = null;
        if (state.again) {
          state.again = false;
          load();
        }
      }
    })();
    return state.loading;
  }

  // the header while signed out: no name, no "Sign out"; as the page came once signed in again
  const who = document.querySelector(".who");
  const whoSignedIn = who ? [...who.childNodes].map((node) => node.cloneNode(true)) : [];
  function showSignedOut(out) {
    if (!who) return;
    if (out) who.textContent = "Signed out";
    else who.replaceChildren(...whoSignedIn.map((node) => node.cloneNode(true)));
    const button = document.querySelector("form.signout button");
    if (button) button.hidden = out;
  }

  // ------------------------------------------------------------------ drawing

  function latLng(position) {
    return [position[1], position[0]];
  }
  function latLngs(geometry) {
    switch (geometry.type) {
      case "LineString": return geometry.coordinates.map(latLng);
      case "MultiLineString": return geometry.coordinates.map((line) => line.map(latLng));
      default: return [];
    }
  }

  function classes(p, shape) {
    const list = ["ev", `ev-${shape}`, `cat-${p.category}`, `origin-${p.origin}`, `kind-${p.kind}`];
    if (p.matched === false) list.push("unmatched");
    if (p.matched === true) list.push("matched");
    if (p.held_back) list.push("held-back");
    if (p.cluster_id) list.push("in-cluster");
    if (p.lint_problems) list.push("has-lint");
    return list.join(" ");
  }

  function lineStyle(p) {
    if (p.origin === "city") {
      const look = CITY[p.category] || CITY.other;
      return { color: look.color, weight: 5, dashArray: p.held_back ? HELD_BACK_DASH : look.dash,
        lineCap: p.held_back ? "round" : "butt", opacity: 1, casing: p.held_back ? HELD_BACK_CASING : CITY_CASING };
    }
    if (p.kind === "irregularity" || p.category === "IRREGULARITY") {
      return { color: CATEGORY.IRREGULARITY.color, weight: 5, opacity: 0.85 };
    }
    const level = Number.isInteger(p.level) ? Math.max(0, Math.min(5, p.level)) : 3;
    return { color: LEVEL_COLOR[level], weight: 5, opacity: 0.95 };
  }

  function tooltipFor(feature) {
    const p = feature.properties;
    const box = el("div", { class: "tip" }, el("strong", { text: title(p) }));
    const facts = [];
    if (p.delay_s) facts.push(delayText(p.delay_s));
    if (p.origin === "city" && p.waze_status) facts.push(`Waze: ${wazeStatusText(p.waze_status)}`);
    if (p.matched === false) facts.push(`not placed on a road${p.match_reason ? ` (${p.match_reason})` : ""}`);
    if (p.lint_problems) facts.push(`${p.lint_problems} lint finding${p.lint_problems === 1 ? "" : "s"}`);
    if (facts.length) box.append(el("div", { text: facts.join(" · ") }));
    if (p.held_back) box.append(el("div", { class: "tip-warn", text: heldBack(p.held_back) }));
    return box;
  }

  function tag(layer, feature) {
    const node = layer.getElement && layer.getElement();
    if (!node) return;
    const p = feature.properties;
    node.setAttribute("data-event-id", String(feature.id ?? p.id));
    node.setAttribute("data-category", p.category || "");
    node.setAttribute("data-origin", p.origin || "");
    node.setAttribute("role", "button");
    // a tab stop each while a keyboard can walk them; thousands would stand between it and the map's
    // controls (zoom, legend), so then they are reached by pointer, and the city's closures by their list
    node.setAttribute("tabindex", state.tabbable ? "0" : "-1");
    node.setAttribute("aria-label", `${title(p)} (${words(p.origin)} ${words(p.kind)}), details`);
    node.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        select(String(feature.id ?? p.id));
      }
    });
  }

  function drawFeature(feature) {
    const p = feature.properties || {};
    const geometry = feature.geometry;
    if (!geometry) return null;
    const id = String(feature.id ?? p.id);
    let layer;
    if (geometry.type === "Point") {
      const category = CATEGORY[p.category] || CATEGORY.MISC;
      layer = L.circleMarker(latLng(geometry.coordinates), {
        renderer: renderers.evPoints, pane: "evPoints", radius: p.origin === "city" ? 7 : 6,
        color: p.matched === false ? "#374151" : "#ffffff", weight: 2, dashArray: p.matched === false ? "2 2" : null,
        fillColor: p.origin === "city" ? (CITY[p.category] || CITY.other).color : category.color, fillOpacity: 0.95,
        className: classes(p, "point"),
      });
    } else {
      const points = latLngs(geometry);
      if (!points.length) return null;
      const look = lineStyle(p);
      const city = p.origin === "city";
      if (p.matched === false) {
        // not placed on a road: a dotted grey outline around it
        extras.addLayer(L.polyline(points, { color: "#4b5563", weight: look.weight + (city ? 10 : 6), dashArray: "1 5",
          lineCap: "round", opacity: 0.95, renderer: renderers.evCasings, pane: "evCasings", interactive: false,
          className: "ev-casing" }));
      } else if (!city) {
        extras.addLayer(L.polyline(points, { color: "#ffffff", weight: look.weight + 3, opacity: 0.7,
          renderer: renderers.evCasings, pane: "evCasings", interactive: false, className: "ev-casing" }));
      }
      if (city) {
        // the event's own path is the solid band, clickable along all its length (a dashed stroke is not
        // hit in its gaps); the dashes ride on it, drawn for the eye only
        layer = L.polyline(points, { color: look.casing, weight: look.weight + 4, opacity: 1,
          renderer: renderers.evLines, pane: "evLines", className: classes(p, "line") });
        extras.addLayer(L.polyline(points, { color: look.color, weight: look.weight, dashArray: look.dashArray,
          lineCap: look.lineCap, opacity: 1, renderer: renderers.evDashes, pane: "evDashes", interactive: false,
          className: "ev-dash" }));
      } else {
        layer = L.polyline(points, { color: look.color, weight: look.weight, opacity: look.opacity,
          renderer: renderers.evLines, pane: "evLines", className: classes(p, "line") });
      }
    }
    layer.feature = feature;
    layer.bindTooltip(() => tooltipFor(feature), { sticky: true, direction: "top", opacity: 1, className: "ev-tip" });
    layer.on("click", () => select(id));
    drawn.addLayer(layer);
    tag(layer, feature);
    return layer;
  }

  function drawClusters(features) {
    const clusters = new Map();
    for (const f of features) {
      const key = f.properties.cluster_id;
      if (!key || !f.geometry) continue;
      if (!clusters.has(key)) clusters.set(key, []);
      clusters.get(key).push(f);
    }
    for (const [key, members] of clusters) {
      if (members.length < 2) continue;
      const bounds = L.latLngBounds([]);
      for (const f of members) {
        const g = f.geometry;
        if (g.type === "Point") bounds.extend(latLng(g.coordinates));
        else bounds.extend(L.polyline(latLngs(g)).getBounds());
      }
      const center = bounds.getCenter();
      const radius = Math.max(35, center.distanceTo(bounds.getNorthEast()) + 20);
      extras.addLayer(L.circle(center, {
        radius, renderer: renderers.evRings, pane: "evRings", interactive: false, fill: false,
        color: "#111827", weight: 1.5, dashArray: "4 3", className: "cluster-ring",
      }));
      const badge = el("span", { class: "cluster-count", text: String(members.length),
        title: `${members.length} reports of one incident`, "data-cluster-id": key });
      const ringTop = L.latLng(center.lat + radius / 111320, center.lng);
      extras.addLayer(L.marker(ringTop, {
        icon: L.divIcon({ className: "cluster-badge", html: badge, iconSize: null, iconAnchor: [0, 10] }),
        interactive: false, keyboard: false, pane: "evPoints",
      }));
    }
  }

  function render() {
    const wanted = selectedCategories();
    drawn.clearLayers();
    extras.clearLayers();
    const perCategory = new Map();
    const shown = [];
    for (const f of state.features) {
      const category = f.properties && f.properties.category;
      perCategory.set(category, (perCategory.get(category) || 0) + 1);
      if (wanted.has(category) || (!CATEGORY[category] && wanted.has("MISC"))) shown.push(f);
    }
    for (const c of CATEGORIES) categoryCounts.get(c.key).textContent = ` ${perCategory.get(c.key) || 0}`;
    // lines first, then points on top; in each, crowd before city so city closures stay visible
    const order = (f) => (f.geometry && f.geometry.type === "Point" ? 2 : 0) + (f.properties.origin === "city" ? 1 : 0);
    let points = 0;
    let lines = 0;
    state.tabbable = shown.length <= MAX_TAB_STOPS;
    for (const f of [...shown].sort((a, b) => order(a) - order(b))) {
      const layer = drawFeature(f);
      if (!layer) continue;
      if (f.geometry.type === "Point") points += 1;
      else lines += 1;
    }
    drawClusters(shown);
    const total = points + lines;
    counter.textContent = `${total} event${total === 1 ? "" : "s"} shown` +
      (state.features.length !== total ? ` of ${state.features.length} loaded` : "") +
      ` · ${points} point${points === 1 ? "" : "s"} · ${lines} line${lines === 1 ? "" : "s"}`;
    Object.assign(counter.dataset, { shown: String(total), points: String(points), lines: String(lines),
      loaded: String(state.features.length), query: state.query });
    updated.textContent = state.loadedAt ? `Updated ${when(state.loadedAt.toISOString())}` : "";
    // Waze's terms: its data is attributed wherever it is shown
    const crowd = form.elements.origin.value !== "city";
    map.attributionControl.removeAttribution(WAZE_ATTRIBUTION);
    if (crowd) map.attributionControl.addAttribution(WAZE_ATTRIBUTION);
    renderClosureList(shown);
    // signed out, nothing is shown because nothing may be: not because the filters match nothing
    if (!total && !state.signedOut) setNotice("empty", state.features.length ? "No events in the checked categories." :
      "No events match these filters.");
    else setNotice("empty", null);
    highlight();
  }

  // ------------------------------------------------------------------ the city closures' list

  function renderClosureList(shown) {
    const list = document.getElementById("closures");
    const heading = document.getElementById("closures-title");
    const closures = shown.filter((f) => f.properties.origin === "city");
    list.replaceChildren();
    heading.textContent = `City closures (${closures.length})`;
    for (const f of closures) {
      const p = f.properties;
      const id = String(f.id ?? p.id);
      const status = el("span", { class: `chip waze-${slug(p.waze_status)}`,
        text: `Waze: ${wazeStatusText(p.waze_status)}` });
      if (!p.waze_status) status.hidden = true;
      const button = el("button", { type: "button", class: "closure", "data-event-id": id },
        el("span", { class: "closure-title", text: title(p) }), status);
      if (p.held_back) button.append(el("span", { class: "chip held", text: heldBack(p.held_back) }));
      else if (p.same_as) button.append(el("span", { class: "chip same", text: `Out of the feeds: ${p.same_as} goes out in its place` }));
      else if (p.published) button.append(el("span", { class: "chip published", text: "In the feeds" }));
      if (p.lint_problems) {
        button.append(el("span", { class: "chip lint",
          text: `${p.lint_problems} lint finding${p.lint_problems === 1 ? "" : "s"}` }));
      }
      button.addEventListener("click", () => select(id, true));
      list.append(el("li", {}, button));
    }
    if (!closures.length) list.append(el("li", { class: "empty", text: "None shown." }));
  }

  // ------------------------------------------------------------------ the detail panel

  const detail = document.getElementById("detail");
  const detailBody = document.getElementById("detail-body");
  function closeDetail() {
    // focus goes back to what opened the panel (a closure in the list, a feature on the map)
    const opener = state.selected ? document.querySelector(`[data-event-id="${CSS.escape(state.selected)}"]`) : null;
    state.selected = null;
    detail.hidden = true;
    highlight();
    map.invalidateSize();
    if (opener) opener.focus();
  }
  document.getElementById("detail-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !detail.hidden) closeDetail();
  });

  function highlight() {
    for (const node of document.querySelectorAll("[data-event-id].selected")) node.classList.remove("selected");
    if (!state.selected) return;
    for (const node of document.querySelectorAll(`[data-event-id="${CSS.escape(state.selected)}"]`)) {
      node.classList.add("selected");
    }
  }

  function layerOf(id) {
    return drawn.getLayers().find((layer) => String(layer.feature.id ?? layer.feature.properties.id) === id);
  }

  // a value of the record in words: objects as "key: value, ...", booleans as yes / no
  function plain(value) {
    if (value === true) return "yes";
    if (value === false) return "no";
    if (Array.isArray(value)) return value.map(plain).join(", ");
    if (value && typeof value === "object") {
      return Object.entries(value).map(([k, v]) => `${words(k)}: ${plain(v)}`).join(", ");
    }
    return value;
  }

  function facts(rows) {
    const dl = el("dl", { class: "facts" });
    for (const [label, value] of rows) {
      if (value === null || value === undefined || value === "") continue;
      dl.append(el("dt", { text: label }), el("dd", { text: String(value) }));
    }
    return dl;
  }

  function section(heading, ...children) {
    return el("section", { class: "detail-section" }, el("h3", { text: heading }), ...children);
  }

  // a revision's changes as `inspect event` shows them: the event's times as times (its own columns only:
  // a source's attribute named *_ms is shown as sent, as the CLI does), an object key by key (what moved)
  const TIME_FIELDS = new Set(["start_ms", "end_ms", "visible_in_waze_since_ms", "waze_last_seen_ms",
    "waze_flowing_since_ms"]);
  function changeValue(field, value) {
    if (value === null || value === undefined) return "—";
    if (TIME_FIELDS.has(field) && Number.isInteger(value)) return when(new Date(value).toISOString());
    return JSON.stringify(value);
  }
  function changeLines(field, before, after) {
    const objects = [before, after].every((v) => v === null || v === undefined || (typeof v === "object" && !Array.isArray(v)));
    if (objects && (before || after)) {
      const keys = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])];
      return keys.filter((k) => JSON.stringify((before || {})[k]) !== JSON.stringify((after || {})[k]))
        .map((k) => changeLines(`${field}.${k}`, (before || {})[k], (after || {})[k])).flat();
    }
    const label = TIME_FIELDS.has(field) ? field.replace(/_ms$/, "") : field;
    return [`${label}: ${changeValue(field, before)} → ${changeValue(field, after)}`];
  }
  function changesText(changes) {
    if (!changes || typeof changes !== "object") return "";
    return Object.entries(changes).map(([field, pair]) => {
      if (Array.isArray(pair) && pair.length === 2) return changeLines(field, pair[0], pair[1]).join("; ");
      return `${field}: ${JSON.stringify(pair)}`;
    }).filter((text) => text).join("; ");
  }

  function renderDetail(feature) {
    const p = feature.properties;
    const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
    swatch.style.backgroundColor = (p.origin === "city" ? (CITY[p.category] || CITY.other) :
      (CATEGORY[p.category] || CATEGORY.MISC)).color;
    const parts = [
      el("h2", { id: "detail-title" }, swatch, title(p)),
      el("p", { class: "detail-sub", text: [p.origin === "city" ? `City event (${p.source})` : `Waze ${p.kind}`,
        p.status, p.city].filter(Boolean).join(" · ") }),
    ];
    const instead = p.same_closure_as && typeof p.same_closure_as === "object" ? p.same_closure_as : null;
    if (p.held_back) parts.push(el("p", { class: "banner held", text: heldBack(p.held_back) }));
    else if (instead || p.same_as) {
      const who = instead ? `${instead.id} (${instead.source ? `source ${instead.source}` : "typed by an operator"})`
        : p.same_as;
      parts.push(el("p", { class: "banner same", text: `The same closure as ${who}, published in its place: this one stays out of the feeds.` }));
    } else if (p.origin === "city" && p.published) parts.push(el("p", { class: "banner ok", text: "In the feeds." }));
    const also = Array.isArray(p.also_reported_by) ? p.also_reported_by : [];
    if (also.length) {
      parts.push(el("p", { class: "detail-sub", text: `Also reported by ${also.map((a) =>
        `${a.id} (${a.source ? `source ${a.source}` : "typed by an operator"})`).join(", ")}: left out of the feeds for this one.` }));
    }

    parts.push(facts([
      ["Category", words(p.category)], ["Type", p.type], ["Subtype", p.subtype], ["Street", p.street],
      ["Direction", words(p.direction)], ["Start", p.start ? when(p.start) : null], ["End", p.end ? when(p.end) : null],
      ["Updated", p.updated ? when(p.updated) : null], ["Jam level", p.level],
      ["Delay", p.delay_s ? delayText(p.delay_s) : null],
      ["Speed", p.speed_kmh !== null && p.speed_kmh !== undefined ? `${Math.round(p.speed_kmh)} km/h` : null],
      ["Length", p.length_m ? `${p.length_m} m` : null], ["Reliability", p.reliability], ["Confidence", p.confidence],
      ["Report cluster", p.cluster_id], ["Id", p.id ?? feature.id],
    ]));

    const lint = Array.isArray(p.lint) ? p.lint : [];
    const lintList = el("ul", { class: "lint" });
    for (const finding of lint) {
      const severity = finding.severity === "error" ? "error" : "warning";
      lintList.append(el("li", { class: `lint-${severity}` },
        el("span", { class: "severity", text: severity === "error" ? "Rejected by Waze" : "Warning" }),
        finding.holds_back ? el("span", { class: "holds", text: "holds it back" }) : null,
        el("span", { class: "lint-message", text: finding.message || "" })));
    }
    if (lint.length || p.origin === "city") {
      parts.push(section("Waze acceptance (lint)", lint.length ? lintList :
        el("p", { class: "muted", text: "No findings: Waze should accept it as it is." })));
    }

    if (p.origin === "city" || p.waze) {
      const waze = p.waze || {};
      const evidence = waze.evidence && typeof waze.evidence === "object" ? waze.evidence : null;
      const evidenceItems = [];
      if (evidence) {
        for (const [how, items] of Object.entries(evidence)) {
          for (const item of Array.isArray(items) ? items : [items]) {
            evidenceItems.push(el("li", { text: typeof item === "object" && item ?
              `${how}: ${item.how || ""} ${item.id || ""}${item.at ? ` (${when(typeof item.at === "number" ?
                new Date(item.at).toISOString() : item.at)})` : ""}` : `${how}: ${item}` }));
          }
        }
      }
      parts.push(section("Waze status",
        facts([["Status", waze.text ? localTimes(waze.text) : wazeStatusText(waze.state || p.waze_status)],
          ["Not published", waze.not_published],
          ["Late", waze.late_minutes ? `Waze should show it by now (${waze.late_minutes} min in effect)` : null],
          ["Since", waze.since ? when(waze.since) : null], ["Last seen", waze.last_seen ? when(waze.last_seen) : null]]),
        evidenceItems.length ? el("ul", { class: "evidence" }, ...evidenceItems) : null));
    }

    const match = p.match && typeof p.match === "object" ? p.match : null;
    parts.push(section("Road match", facts([
      ["Placed on a road", p.matched === true ? "yes" : p.matched === false ? "no" : "not checked"],
      ["Reason", p.match_reason || (match && match.reason)],
      ["Note", match && match.note],
      ["Confidence", match && match.confidence !== null && match.confidence !== undefined ? match.confidence : null],
      ["Distance", match && match.distance_m !== null && match.distance_m !== undefined ? `${match.distance_m} m` : null],
    ])));

    const details = p.details && typeof p.details === "object" ? p.details : null;
    if (details && Object.keys(details).length) {
      parts.push(section("Details", facts(Object.entries(details).map(([k, v]) => [words(k), plain(v)]))));
    }

    const confirmations = Array.isArray(p.confirmations) ? p.confirmations : [];
    if (confirmations.length) {
      parts.push(section("Confirmations", el("ul", { class: "evidence" }, ...confirmations.map((c) =>
        el("li", { text: typeof c === "object" && c !== null ?
          Object.values(c).filter((v) => v !== null && typeof v !== "object").join(" · ") : String(c) })))));
    }

    const revisions = Array.isArray(p.revisions) ? p.revisions : [];
    if (revisions.length) {
      const table = el("table", { class: "revisions" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "When" }), el("th", { scope: "col", text: "What" }),
          el("th", { scope: "col", text: "Who" }), el("th", { scope: "col", text: "Changes" }))));
      const body = el("tbody");
      for (const r of revisions) {
        body.append(el("tr", {}, el("td", { text: when(r.at) }), el("td", { text: r.action || "" }),
          el("td", { text: r.operator || "—" }), el("td", { text: changesText(r.changes) })));
      }
      table.append(body);
      parts.push(section(`Revisions (${revisions.length})`, table));
    }
    detailBody.replaceChildren(...parts);
  }

  async function select(id, pan) {
    state.selected = id;
    highlight();
    const wasHidden = detail.hidden;
    detail.hidden = false;
    detail.setAttribute("aria-labelledby", "detail-title");
    if (wasHidden) {
      map.invalidateSize();
      foldLegendIfNarrow();
    }
    const layer = layerOf(id);
    if (layer) {
      renderDetail(layer.feature); // at once from the list's data; the full record follows
      if (pan) {
        if (layer.getLatLng) map.panTo(layer.getLatLng());
        else map.fitBounds(layer.getBounds(), { padding: [60, 60], maxZoom: Math.max(map.getZoom(), 16) });
      }
    }
    detailBody.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(`/api/events/${encodeURIComponent(id)}`, {
        credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store",
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const feature = await response.json();
      if (state.selected === id) renderDetail(feature);
    } catch (error) {
      if (state.selected === id) {
        detailBody.append(el("p", { class: "banner held", text: `Cannot load the full record (${error.message}).` }));
      }
    } finally {
      detailBody.removeAttribute("aria-busy");
      detailBody.dataset.eventId = id;
    }
  }

  // ------------------------------------------------------------------ wiring

  form.addEventListener("change", (event) => {
    if (event.target.name === "category") render();
    else load();
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  setInterval(() => {
    if (!document.hidden) load();
  }, REFRESH_MS);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.loadedAt && Date.now() - state.loadedAt.getTime() > REFRESH_MS) load();
  });
  load();
})();
