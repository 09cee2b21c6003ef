/*
 * map.js: draws spatial_update events as SVG (no tiles, nothing fetched).
 * Owns: collecting GeoJSON features across events, fitting them into the
 * map's viewBox (equirectangular, longitude scaled by cos(latitude)), and
 * drawing points, lines, polygons and the distance pairs between named points.
 */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var W = 400, H = 300;
  var PAD_LEFT = 20, PAD_RIGHT = 90, PAD_Y = 26;   /* room on the right for labels */
  var features = [];   /* every feature seen, later ones replace same-named ones */
  var distances = [];

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function featureName(f, i) {
    var p = f.properties || {};
    return p.name || p.label || p.id || ("feature " + (i + 1));
  }

  /* every [lon, lat] of a geometry, flattened */
  function coordsOf(g) {
    if (g.type === "Point") return [g.coordinates];
    if (g.type === "LineString") return g.coordinates;
    if (g.type === "Polygon") return [].concat.apply([], g.coordinates);
    return [];
  }

  function projection(all) {
    var lons = all.map(function (c) { return c[0]; });
    var lats = all.map(function (c) { return c[1]; });
    var minLon = Math.min.apply(null, lons), maxLon = Math.max.apply(null, lons);
    var minLat = Math.min.apply(null, lats), maxLat = Math.max.apply(null, lats);
    var k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    var spanX = Math.max((maxLon - minLon) * k, 1e-6);
    var spanY = Math.max(maxLat - minLat, 1e-6);
    var scale = Math.min((W - PAD_LEFT - PAD_RIGHT) / spanX, (H - 2 * PAD_Y) / spanY);
    var offX = PAD_LEFT + (W - PAD_LEFT - PAD_RIGHT - spanX * scale) / 2, offY = (H - spanY * scale) / 2;
    return function (c) {
      return [offX + (c[0] - minLon) * k * scale, H - offY - (c[1] - minLat) * scale];
    };
  }

  function pointsAttr(coords, project) {
    return coords.map(function (c) {
      var p = project(c);
      return p[0].toFixed(1) + "," + p[1].toFixed(1);
    }).join(" ");
  }

  function drawFeature(svg, f, i, project, where) {
    var g = f.geometry, name = featureName(f, i);
    var kind = (f.properties && f.properties.kind) || "";
    if (g.type === "Polygon") {
      svg.appendChild(el("polygon", { "class": "map-polygon", points: pointsAttr(g.coordinates[0], project), "data-name": name }));
    } else if (g.type === "LineString") {
      svg.appendChild(el("polyline", { "class": "map-line", points: pointsAttr(g.coordinates, project), "data-name": name }));
    } else if (g.type === "Point") {
      var p = project(g.coordinates);
      where[name] = p;
      svg.appendChild(el("circle", { "class": "map-point " + (kind ? "map-" + kind : ""),
        cx: p[0].toFixed(1), cy: p[1].toFixed(1), r: kind === "subject" ? 7 : 5, "data-name": name }));
      svg.appendChild(el("text", { "class": "map-label", x: (p[0] + 8).toFixed(1), y: (p[1] - 6).toFixed(1) }, name));
    }
  }

  function drawDistances(svg, where) {
    distances.forEach(function (d) {
      var a = where[d.from], b = where[d.to];
      if (!a || !b) return;
      svg.insertBefore(el("line", { "class": "map-distance", x1: a[0], y1: a[1], x2: b[0], y2: b[1] }), svg.firstChild);
    });
  }

  function redraw() {
    var svg = document.getElementById("map");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var all = [].concat.apply([], features.map(function (f) { return coordsOf(f.geometry); }));
    if (all.length === 0) return;
    var project = projection(all), where = {};
    features.forEach(function (f, i) { drawFeature(svg, f, i, project, where); });
    drawDistances(svg, where);
  }

  function renderDistanceList() {
    var list = document.getElementById("distances");
    list.textContent = "";
    distances.forEach(function (d) {
      var li = document.createElement("li");
      li.textContent = d.from + " \u2194 " + d.to + ": " + Number(d.distance_ft).toLocaleString("en-US") + " ft";
      list.appendChild(li);
    });
  }

  /* add(event): merge one spatial_update event and redraw */
  function add(ev) {
    var incoming = (ev.geojson && ev.geojson.features) || [];
    incoming.forEach(function (f) {
      if (!f || !f.geometry) return;
      var name = featureName(f, features.length);
      features = features.filter(function (o, i) { return featureName(o, i) !== name; });
      features.push(f);
    });
    (ev.distances || []).forEach(function (d) {
      distances = distances.filter(function (o) { return !(o.from === d.from && o.to === d.to); });
      distances.push(d);
    });
    redraw();
    renderDistanceList();
  }

  /* clear(): forget every feature (the stream was reset) */
  function clear() {
    features = [];
    distances = [];
    redraw();
    renderDistanceList();
  }

  window.aegisMap = { add: add, clear: clear };
})();
