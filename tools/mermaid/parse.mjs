// Parse Mermaid diagrams with the real mermaid parser, under jsdom (no browser).
// Usage: node parse.mjs [--tasks] [FILE ...]   (no FILE: read stdin)
// A file may hold a bare diagram or Markdown with ```mermaid fenced blocks (each is parsed).
// Exit 0 when every diagram parses (prints its type; with --tasks, a gantt's title, sections and
// tasks as one JSON line per diagram), 1 with mermaid's error otherwise, 2 on bad usage.
import { readFileSync } from "node:fs";

// The diagrams' times are UTC (the block says so); dayjs reads them in the local zone.
process.env.TZ = "UTC";
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!DOCTYPE html><html><body></body></html>", { pretendToBeVisual: true });
globalThis.window = dom.window;
globalThis.document = dom.window.document;
for (const name of ["Element", "HTMLElement", "SVGElement", "Node", "DOMParser", "navigator"]) {
  if (!(name in globalThis)) globalThis[name] = dom.window[name];
}

const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });

function diagrams(text) {
  const fence = /^```mermaid[^\n]*\n([\s\S]*?)^```[ \t]*$/gm;
  const found = [...text.matchAll(fence)].map((m) => m[1]);
  if (found.length) return found;
  if (/^```/m.test(text)) return [];
  return [text];
}

const args = process.argv.slice(2);
const showTasks = args[0] === "--tasks";
const sources = showTasks ? args.slice(1) : args;
const inputs = sources.length
  ? sources.map((f) => [f, readFileSync(f, "utf8")])
  : [["<stdin>", readFileSync(0, "utf8")]];
let failed = false;
for (const [name, text] of inputs) {
  const blocks = diagrams(text);
  if (!blocks.length) {
    console.error(`${name}: no mermaid diagram found`);
    process.exit(2);
  }
  for (const [i, block] of blocks.entries()) {
    try {
      const result = await mermaid.parse(block);
      if (!showTasks) {
        console.log(`${name}#${i + 1}: ${result.diagramType}`);
        continue;
      }
      const { db } = await mermaid.mermaidAPI.getDiagramFromText(block);
      console.log(JSON.stringify({
        type: result.diagramType,
        title: db.getDiagramTitle(),
        sections: db.getSections(),
        tasks: db.getTasks().map((t) => ({
          section: t.section, name: t.task.trim(), milestone: Boolean(t.milestone),
          crit: Boolean(t.crit), active: Boolean(t.active), done: Boolean(t.done),
          start: t.startTime.toISOString(), end: t.endTime.toISOString(),
        })),
      }));
    } catch (error) {
      failed = true;
      console.error(`${name}#${i + 1}: ${String(error?.message ?? error).split("\n").join("\n  ")}`);
    }
  }
}
process.exit(failed ? 1 : 0);
