/** One API's channel types (one-api-reference §5). */

export type ConfigField = 'api_version' | 'region' | 'ak' | 'sk' | 'user_id' | 'library_id' | 'plugin' | 'vertex_ai_project_id' | 'vertex_ai_adc';

export interface ChannelType {
  id: number;
  label: string;
  /** Default upstream base URL; empty when the operator must supply one. */
  baseUrl: string;
  /** The base URL field is required (no default). */
  needsBaseUrl?: boolean;
  keyHint?: string;
  config?: ConfigField[];
  color?: string;
}

export const CHANNEL_TYPES: ChannelType[] = [
  { id: 1, label: 'OpenAI', baseUrl: 'https://api.openai.com', keyHint: 'sk-...', color: 'green' },
  { id: 50, label: 'OpenAI Compatible', baseUrl: '', needsBaseUrl: true, keyHint: 'API key', color: 'green' },
  { id: 14, label: 'Anthropic Claude', baseUrl: 'https://api.anthropic.com', keyHint: 'sk-ant-...', color: 'orange' },
  { id: 3, label: 'Azure OpenAI', baseUrl: '', needsBaseUrl: true, keyHint: 'Azure API key', config: ['api_version'], color: 'blue' },
  { id: 24, label: 'Google Gemini', baseUrl: 'https://generativelanguage.googleapis.com', keyHint: 'AIza...', config: ['api_version'], color: 'blue' },
  { id: 51, label: 'Gemini (OpenAI compatible)', baseUrl: 'https://generativelanguage.googleapis.com/v1beta/openai/', color: 'blue' },
  { id: 28, label: 'Mistral AI', baseUrl: 'https://api.mistral.ai', color: 'orange' },
  { id: 36, label: 'DeepSeek', baseUrl: 'https://api.deepseek.com', color: 'indigo' },
  { id: 29, label: 'Groq', baseUrl: 'https://api.groq.com/openai', color: 'orange' },
  { id: 30, label: 'Ollama', baseUrl: 'http://localhost:11434', color: 'gray' },
  { id: 20, label: 'OpenRouter', baseUrl: 'https://openrouter.ai/api', color: 'violet' },
  { id: 33, label: 'AWS Bedrock (Claude)', baseUrl: '', keyHint: 'Leave any value; credentials in config', config: ['region', 'ak', 'sk'], color: 'yellow' },
  { id: 42, label: 'Vertex AI', baseUrl: '', keyHint: 'Leave any value; ADC JSON in config', config: ['region', 'vertex_ai_project_id', 'vertex_ai_adc'], color: 'blue' },
  { id: 35, label: 'Cohere', baseUrl: 'https://api.cohere.ai', color: 'teal' },
  { id: 37, label: 'Cloudflare Workers AI', baseUrl: 'https://api.cloudflare.com', config: ['user_id'], keyHint: 'API token', color: 'orange' },
  { id: 34, label: 'Coze', baseUrl: 'https://api.coze.com', config: ['user_id', 'api_version'], keyHint: 'Personal access token', color: 'blue' },
  { id: 45, label: 'xAI', baseUrl: 'https://api.x.ai', color: 'dark' },
  { id: 39, label: 'Together AI', baseUrl: 'https://api.together.xyz', color: 'blue' },
  { id: 44, label: 'SiliconFlow', baseUrl: 'https://api.siliconflow.cn', color: 'violet' },
  { id: 41, label: 'Novita', baseUrl: 'https://api.novita.ai/v3/openai', color: 'pink' },
  { id: 46, label: 'Replicate', baseUrl: 'https://api.replicate.com/v1/models/', color: 'gray' },
  { id: 38, label: 'DeepL', baseUrl: 'https://api-free.deepl.com', color: 'blue' },
  { id: 25, label: 'Moonshot AI', baseUrl: 'https://api.moonshot.cn', color: 'dark' },
  { id: 26, label: 'Baichuan', baseUrl: 'https://api.baichuan-ai.com', color: 'orange' },
  { id: 27, label: 'MiniMax', baseUrl: 'https://api.minimax.chat', color: 'red' },
  { id: 31, label: '01.AI (LingYiWanWu)', baseUrl: 'https://api.lingyiwanwu.com', color: 'green' },
  { id: 32, label: 'StepFun', baseUrl: 'https://api.stepfun.com', color: 'blue' },
  { id: 40, label: 'Doubao (Volcengine)', baseUrl: 'https://ark.cn-beijing.volces.com', color: 'blue' },
  { id: 17, label: 'Ali Qwen (DashScope)', baseUrl: 'https://dashscope.aliyuncs.com', config: ['plugin'], color: 'orange' },
  { id: 49, label: 'Ali Bailian', baseUrl: 'https://dashscope.aliyuncs.com', color: 'orange' },
  { id: 15, label: 'Baidu ERNIE (v1)', baseUrl: 'https://aip.baidubce.com', keyHint: 'APIKey|SecretKey', color: 'blue' },
  { id: 47, label: 'Baidu Qianfan (v2)', baseUrl: 'https://qianfan.baidubce.com', keyHint: 'Bearer API key', color: 'blue' },
  { id: 16, label: 'Zhipu ChatGLM', baseUrl: 'https://open.bigmodel.cn', keyHint: 'id.secret', color: 'violet' },
  { id: 18, label: 'iFlytek Spark (WebSocket)', baseUrl: '', keyHint: 'APPID|APISecret|APIKey', config: ['api_version'], color: 'blue' },
  { id: 48, label: 'iFlytek Spark (HTTP)', baseUrl: 'https://spark-api-open.xf-yun.com', color: 'blue' },
  { id: 23, label: 'Tencent Hunyuan', baseUrl: 'https://hunyuan.tencentcloudapi.com', keyHint: 'AppId|SecretId|SecretKey', color: 'teal' },
  { id: 19, label: '360 AI', baseUrl: 'https://ai.360.cn', color: 'green' },
  { id: 11, label: 'Google PaLM2', baseUrl: 'https://generativelanguage.googleapis.com', color: 'gray' },
  { id: 8, label: 'Custom', baseUrl: '', needsBaseUrl: true, keyHint: 'API key', color: 'pink' },
  { id: 43, label: 'Proxy', baseUrl: '', needsBaseUrl: true, color: 'gray' },
  { id: 22, label: 'FastGPT', baseUrl: 'https://fastgpt.run/api/openapi', color: 'blue' },
  { id: 21, label: 'AIProxy Library', baseUrl: 'https://api.aiproxy.io', config: ['library_id'], color: 'purple' },
  { id: 2, label: 'API2D', baseUrl: 'https://oa.api2d.net', color: 'gray' },
  { id: 4, label: 'CloseAI', baseUrl: 'https://api.closeai-proxy.xyz', color: 'gray' },
  { id: 5, label: 'OpenAI-SB', baseUrl: 'https://api.openai-sb.com', color: 'gray' },
  { id: 6, label: 'OpenAI Max', baseUrl: 'https://api.openaimax.com', color: 'gray' },
  { id: 7, label: 'OhMyGPT', baseUrl: 'https://api.ohmygpt.com', color: 'gray' },
  { id: 9, label: 'AI.LS', baseUrl: 'https://api.caipacity.com', color: 'gray' },
  { id: 10, label: 'AIProxy', baseUrl: 'https://api.aiproxy.io', color: 'gray' },
  { id: 12, label: 'API2GPT', baseUrl: 'https://api.api2gpt.com', color: 'gray' },
  { id: 13, label: 'AIGC2D', baseUrl: 'https://api.aigc2d.com', color: 'gray' },
];

const BY_ID = new Map(CHANNEL_TYPES.map((c) => [c.id, c]));

export function channelType(id: number): ChannelType {
  return BY_ID.get(id) ?? { id, label: `Type ${id}`, baseUrl: '' };
}

export const CONFIG_FIELD_LABELS: Record<ConfigField, { label: string; placeholder?: string; multiline?: boolean }> = {
  api_version: { label: 'API version', placeholder: '2024-03-01-preview' },
  region: { label: 'Region', placeholder: 'us-east-1' },
  ak: { label: 'Access key (AK)' },
  sk: { label: 'Secret key (SK)' },
  user_id: { label: 'Account / user ID' },
  library_id: { label: 'Library ID' },
  plugin: { label: 'Plugin' },
  vertex_ai_project_id: { label: 'Vertex AI project ID' },
  vertex_ai_adc: { label: 'Application Default Credentials (JSON)', multiline: true },
};

/** Parses the channel's `config` JSON string leniently. */
export function parseChannelConfig(s: string | null | undefined): Record<string, string> {
  if (!s) return {};
  try {
    const v = JSON.parse(s) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const out: Record<string, string> = {};
      for (const [k, val] of Object.entries(v)) if (typeof val === 'string') out[k] = val;
      return out;
    }
  } catch {
    // ignore
  }
  return {};
}

/** Serialises config fields, dropping empty values (`omitempty`). */
export function serializeChannelConfig(cfg: Record<string, string>): string {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(cfg)) if (v && v.trim()) out[k] = v.trim();
  return Object.keys(out).length ? JSON.stringify(out) : '';
}
