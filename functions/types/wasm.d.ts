// wrangler bundles `.wasm` imports as pre-compiled WebAssembly.Module (CompiledWasm).
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}
declare module "sql.js/dist/sql-wasm-browser.js" {
  import initSqlJs from "sql.js";
  export default initSqlJs;
}
