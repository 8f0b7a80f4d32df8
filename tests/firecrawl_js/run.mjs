// One scrape and one crawl through the Node SDK (@mendable/firecrawl-js 4.x), printed as JSON for the test.
// Usage: node run.mjs SERVER_URL PAGE_URL CRAWL_URL (with NODE_PATH or a node_modules that has the SDK)
import Firecrawl from "@mendable/firecrawl-js";

const [server, page, seed] = process.argv.slice(2);
const app = new Firecrawl({ apiKey: "unused", apiUrl: server });
const doc = await app.scrape(page, { formats: ["markdown", "links"] });
const crawl = await app.crawl(seed, { limit: 5, pollInterval: 1 });
console.log(JSON.stringify({
  markdown: doc.markdown, links: doc.links, status: doc.metadata?.statusCode,
  crawl: { status: crawl.status, total: crawl.total, completed: crawl.completed, pages: crawl.data.length },
}));
