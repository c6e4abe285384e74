// Asks a lantern for embeddings through the official Node SDK, once as the SDK does by
// default (base64 on the wire, decoded by the SDK) and once as floats; prints both as JSON.
import OpenAI from "openai";

const [baseURL, model, ...input] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
const byDefault = await client.embeddings.create({ model, input });
const asFloat = await client.embeddings.create({ model, input, encoding_format: "float" });
const vectors = (r) => r.data.map((d) => Array.from(d.embedding));
console.log(JSON.stringify({
  default: vectors(byDefault),
  float: vectors(asFloat),
  usage: byDefault.usage,
}));
