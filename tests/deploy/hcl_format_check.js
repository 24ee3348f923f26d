#!/usr/bin/env node
// Prints each Terraform file that hclwrite.Format (HashiCorp's formatter, which `terraform fmt`
// is built on) would change, and exits 3 if any: `terraform fmt -check` where no terraform
// binary is installed. @cdktf/hcl-tools is installed beside it by tests/deploy/test_terraform.py.
const path = require("path");
const fs = require("fs");
const { format } = require(
  path.join(__dirname, "..", "..", ".venv-deploy", "hcl-tools", "node_modules", "@cdktf", "hcl-tools"),
);

(async () => {
  let changed = 0;
  for (const file of process.argv.slice(2)) {
    const text = fs.readFileSync(file, "utf8");
    if ((await format(text)) !== text) {
      console.log(file);
      changed += 1;
    }
  }
  process.exit(changed ? 3 : 0);
})();
