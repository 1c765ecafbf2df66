// Validates Kubernetes custom resources against validators generated from their operators'
// CRDs (the kubernetes-models packages pinned in package.json).
// stdin: a JSON array of objects; stdout: a JSON array, one entry per object:
// {"kind", "name", "problems": [...]} or, for a group no package here covers, "problems": null.
import { readFileSync } from "node:fs";

const PACKAGES = {
  "keda.sh": "@kubernetes-models/keda",
  "postgresql.cnpg.io": "@kubernetes-models/cloudnative-pg",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

const objects = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const object of objects) {
  const [group, version] = object.apiVersion.split("/");
  const name = object.metadata?.name ?? "";
  const pkg = PACKAGES[group];
  if (pkg === undefined) {
    results.push({ kind: object.kind, name, problems: null });
    continue;
  }
  let model;
  try {
    model = (await import(`${pkg}/${group}/${version}/${object.kind}`))[object.kind];
  } catch (error) {
    results.push({ kind: object.kind, name, problems: [`no model for ${object.apiVersion} ${object.kind} in ${pkg}`] });
    continue;
  }
  try {
    new model(object).validate();
    results.push({ kind: object.kind, name, problems: [] });
  } catch (error) {
    results.push({ kind: object.kind, name, problems: [error.message] });
  }
}
process.stdout.write(JSON.stringify(results));
