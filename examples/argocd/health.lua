-- Argo CD health of a Modelyard ModelDeployment or ModelVersion, from the conditions the operator writes
-- (docs/gitops.md). Register it for both kinds in argocd-cm (argocd-cm.yaml beside this file holds it verbatim).
--   Degraded     Stalled=True: nothing moves until something changes (a ModelDeployment that cannot be served
--                as asked, a rolled-back rollout holding, a ModelVersion that failed validation)
--   Suspended    Paused=True: a rollout waits at a pause step or for an approve action
--   Progressing  the operator has not seen this generation yet, or Reconciling=True (rolling out, validating)
--   Healthy      Ready=True
local hs = {status = "Progressing", message = "Waiting for the operator to report status"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local found = {}
for _, condition in ipairs(obj.status.conditions) do
  found[condition.type] = condition
end
local function describe(condition)
  local reason = condition.reason or ""
  if condition.message ~= nil and condition.message ~= "" then
    return reason .. ": " .. condition.message
  end
  return reason
end
local function is_true(type_)
  return found[type_] ~= nil and found[type_].status == "True"
end
if is_true("Stalled") then
  hs.status = "Degraded"
  hs.message = describe(found.Stalled)
elseif is_true("Paused") then
  hs.status = "Suspended"
  hs.message = describe(found.Paused)
elseif is_true("Reconciling") then
  hs.message = describe(found.Reconciling)
elseif is_true("Ready") then
  hs.status = "Healthy"
  hs.message = describe(found.Ready)
elseif found.Ready ~= nil then
  hs.message = describe(found.Ready)
end
return hs
