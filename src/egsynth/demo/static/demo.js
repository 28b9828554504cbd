"use strict";
// The demo page: picks or uploads the inputs, asks the app (egsynth.demo.server) for a synthesis, and on a click
// of the output for the exemplar regions that pixel drew its style from. Errors are the CLI's one line.

const $ = (id) => document.getElementById(id);
let synthesis = null; // the app's answer to the last synthesis

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || `error: the app answered ${response.status} ${response.statusText}`);
  return answer;
}

// An <input type=file>'s file as {name, data: base64}, or null when none is chosen.
function fileData(input) {
  const file = input.files[0];
  if (!file) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve({ name: file.name, data: reader.result.split(",", 2)[1] || "" });
    reader.onerror = () => reject(new Error(`error: ${file.name}: cannot be read`));
    reader.readAsDataURL(file);
  });
}

// An uploaded file, else the scene picked.
async function source(select, input, what) {
  const upload = await fileData(input);
  if (upload) return upload;
  if (!select.value) throw new Error(`error: upload ${what} (no scenes found in data/eval)`);
  return select.value;
}

function classItem(info, share) {
  const item = document.createElement("li");
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = info.color;
  item.append(swatch, share === undefined ? info.name : `${info.name} ${Math.round(share * 100)} %`);
  return item;
}

function fillScenes(select, scenes, chosen) {
  select.replaceChildren(...scenes.map((name) => new Option(name, name)));
  if (scenes.length) select.value = scenes[chosen % scenes.length];
}

async function synthesize() {
  $("synthesize").disabled = true;
  $("status").textContent = "Synthesizing…";
  try {
    const answer = await post("/api/synthesize", {
      model: $("model").value,
      target: await source($("target-scene"), $("target-file"), "a target label map"),
      exemplar: await source($("exemplar-scene"), $("exemplar-file"), "an exemplar photo"),
      exemplar_labels: await fileData($("exemplar-labels-file")),
    });
    showError("");
    synthesis = answer;
    for (const id of ["target", "exemplar", "exemplar-labels"]) $(id).src = answer[id.replace("-", "_")];
    $("output").src = answer.image;
    $("legend").replaceChildren(...answer.legend.map((info) => classItem(info)));
    $("status").textContent =
      `${answer.width}x${answer.height} by ${answer.model} in ${answer.seconds.toFixed(2)} s: ` +
      `${answer.target_name} in the style of ${answer.exemplar_name}.`;
    $("marker").hidden = true;
    $("scales").replaceChildren();
    $("pixel").textContent = answer.has_attention
      ? "Click a pixel of the output."
      : `The ${answer.variant} generator has no spatial and channel attention to show.`;
    $("t").disabled = !answer.can_mix;
    if (answer.can_mix) await mix();
    else $("mix-status").textContent = `The ${answer.variant} generator cannot interpolate styles (MSCA variants only).`;
  } catch (error) {
    showError(error.message);
    $("status").textContent = synthesis ? "The last good synthesis is shown." : "No synthesis yet.";
  } finally {
    $("synthesize").disabled = false;
  }
}

async function explain(event) {
  if (!synthesis || !synthesis.has_attention) return;
  const box = $("output").getBoundingClientRect();
  const x = Math.min(synthesis.width - 1, Math.floor(((event.clientX - box.left) / box.width) * synthesis.width));
  const y = Math.min(synthesis.height - 1, Math.floor(((event.clientY - box.top) / box.height) * synthesis.height));
  try {
    const answer = await post("/api/explain", { synthesis: synthesis.synthesis, x, y });
    showError("");
    $("marker").style.left = `${((x + 0.5) / synthesis.width) * 100}%`;
    $("marker").style.top = `${((y + 0.5) / synthesis.height) * 100}%`;
    $("marker").hidden = false;
    const target = classItem(answer.target_class);
    $("pixel").replaceChildren(
      `Pixel (${x}, ${y}) of target class `,
      ...target.childNodes,
      " drew from the exemplar as shown: per scale, Σ_k β_k(p) α_k (Eq. 4, 7), the share of each exemplar class below.",
    );
    $("scales").replaceChildren(
      ...answer.scales.map((scale) => {
        const figure = document.createElement("figure");
        const image = document.createElement("img");
        image.className = "pixelated overlay";
        image.alt = `attention at scale ${scale.scale}`;
        image.src = scale.overlay;
        const caption = document.createElement("figcaption");
        const classes = document.createElement("ul");
        classes.className = "classes";
        classes.append(...scale.classes.map((info) => classItem(info, info.share)));
        caption.append(
          `scale ${scale.scale} (${scale.width}x${scale.height}), gate passes ${Math.round(scale.carried * 100)} %`,
          classes,
        );
        figure.append(image, caption);
        return figure;
      }),
    );
  } catch (error) {
    showError(error.message);
  }
}

async function mix() {
  if (!synthesis || !synthesis.can_mix) return;
  const t = Number($("t").value);
  $("mix-status").textContent = `Mixing at t = ${t}…`;
  try {
    const answer = await post("/api/mix", {
      synthesis: synthesis.synthesis,
      exemplar_b: await source($("exemplar-b-scene"), $("exemplar-b-file"), "exemplar B"),
      exemplar_b_labels: await fileData($("exemplar-b-labels-file")),
      t,
    });
    showError("");
    $("mix").src = answer.image;
    $("exemplar-b").src = answer.exemplar_b;
    $("mix-status").textContent = `t = ${t}: ${Math.round((1 - t) * 100)} % exemplar A, ${Math.round(t * 100)} % exemplar B.`;
  } catch (error) {
    showError(error.message);
    $("mix-status").textContent = "";
  }
}

async function start() {
  const choices = await (await fetch("/api/choices")).json();
  $("model").replaceChildren(...choices.models.map((name) => new Option(name, name)));
  $("model").value = choices.default_model;
  fillScenes($("target-scene"), choices.scenes, 0);
  fillScenes($("exemplar-scene"), choices.scenes, 1);
  fillScenes($("exemplar-b-scene"), choices.scenes, 2);
  // A scene picked replaces the file uploaded in its place.
  for (const [select, inputs] of [
    ["target-scene", ["target-file"]],
    ["exemplar-scene", ["exemplar-file", "exemplar-labels-file"]],
    ["exemplar-b-scene", ["exemplar-b-file", "exemplar-b-labels-file"]],
  ]) {
    $(select).addEventListener("change", () => inputs.forEach((id) => ($(id).value = "")));
  }
  $("synthesize").addEventListener("click", synthesize);
  $("output").addEventListener("click", explain);
  $("t").addEventListener("change", mix);
  for (const id of ["exemplar-b-scene", "exemplar-b-file", "exemplar-b-labels-file"]) $(id).addEventListener("change", mix);
  if (choices.scenes.length) await synthesize();
}

start().catch((error) => showError(`error: the page could not start (${error.message})`));
