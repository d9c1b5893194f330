// Turns every policy resource into policy units, numbering units and rules densely.
import type { Resource } from '../resources/kinds.ts';
import { unitsFromCilium } from './from-cilium.ts';
import { unitFromNetworkPolicy } from './from-network-policy.ts';
import type { PolicyUnit } from './ir.ts';

export function buildPolicyUnits(resources: readonly Resource[]): PolicyUnit[] {
  const units: PolicyUnit[] = [];
  let ruleId = 0;
  const nextRule = (): number => ruleId++;
  for (const r of resources) {
    if (r.kind === 'NetworkPolicy') units.push(unitFromNetworkPolicy(r, units.length, nextRule));
    else if (r.kind === 'CiliumNetworkPolicy' || r.kind === 'CiliumClusterwideNetworkPolicy') {
      units.push(...unitsFromCilium(r, () => units.length, nextRule).map((u, i) => ({ ...u, id: units.length + i })));
    }
  }
  return units;
}
