// A worker host: runs nodes from the shared store (the Celery worker of the web + worker split).
//   Nova__Storage=Redis ConnectionStrings__Redis=127.0.0.1:6379 dotnet run --project samples/Nova.Workflow.Samples.Worker
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Nova.Workflow;
using Nova.Workflow.Samples;

var builder = Host.CreateApplicationBuilder(args);
var concurrency = builder.Configuration.GetValue("Nova:Concurrency", 16);
builder.Services.AddNovaWorkflows(nova => nova
    .UseConfiguredStorage(builder.Configuration)
    .AddSampleWorkflows()
    .AddWorker(w => w.Queue(WorkflowDefinition.DefaultQueue, concurrency)));
await builder.Build().RunAsync();
