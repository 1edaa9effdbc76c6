using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace Nova.Workflow.Postgres;

/// <summary>Settings of the PostgreSQL provider.</summary>
public sealed partial class PostgresProviderOptions
{
    /// <summary>The schema that holds the tables. Default <c>nova</c>; a lower-case SQL identifier.</summary>
    public string Schema { get; set; } = "nova";

    /// <summary>
    /// Create and upgrade the tables at start (under an advisory lock). Default true. Set false when a DBA
    /// applies <see cref="PostgresMigrations.Script"/> by hand.
    /// </summary>
    public bool RunMigrations { get; set; } = true;

    /// <summary>
    /// After this many jobs have finished in this process, it vacuums the jobs table itself (one vacuum at a time,
    /// skipped while another session vacuums it). A busy queue leaves dead row versions at the front of its ready index,
    /// and every claim walks over them until a vacuum removes them; autovacuum comes round at most once a minute. Default
    /// 2,000; 0 leaves it to autovacuum. The vacuum needs the role to own the table (it does when the provider created it).
    /// </summary>
    public int VacuumJobsAfter { get; set; } = 2_000;

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    internal static partial Regex Identifier();
}

internal sealed class PostgresProviderOptionsValidator : IValidateOptions<PostgresProviderOptions>
{
    public ValidateOptionsResult Validate(string? name, PostgresProviderOptions options)
    {
        if (!PostgresProviderOptions.Identifier().IsMatch(options.Schema ?? string.Empty))
        {
            return ValidateOptionsResult.Fail($"Postgres Schema '{options.Schema}' must be a lower-case identifier (letters, digits, '_', at most 63 characters).");
        }

        return options.VacuumJobsAfter < 0
            ? ValidateOptionsResult.Fail($"Postgres VacuumJobsAfter must be 0 (off) or more; it is {options.VacuumJobsAfter}.")
            : ValidateOptionsResult.Success;
    }
}
